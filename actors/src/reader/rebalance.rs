//! The consumer context: librdkafka's log and errors, and the rebalance protocol — an assigned
//! partition starts at the database's progress, a revoked one first lets its batches finish.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use crate::batches::Fence;
use crate::health::{Assigned, Revoked};
use crate::records::PartitionKey;

use super::state::*;

pub(super) struct ReaderContext {
    pub(super) shared: Arc<Shared>,
}

impl ClientContext for ReaderContext {
    /// Warnings and errors repeat while a fault lasts (a broker down: every reconnect): each
    /// facility is logged once, then once a minute with the count held back; the rest at debug.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let log = &self.shared.log;
        let serious = matches!(
            level,
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning
        );
        let held = if serious { self.shared.brokers().throttle.admit(&format!("log:{fac}"), std::time::Instant::now()) } else { Some(0) };
        match (level, held) {
            (_, None) | (RDKafkaLogLevel::Debug, _) => slog::debug!(log, "librdkafka: {}", log_message; "facility" => fac),
            (RDKafkaLogLevel::Warning, Some(held)) => {
                slog::warn!(log, "librdkafka: {}", log_message; "facility" => fac, "held_back" => held)
            }
            (RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info, _) => slog::info!(log, "librdkafka: {}", log_message; "facility" => fac),
            (_, Some(held)) => slog::error!(log, "librdkafka: {}", log_message; "facility" => fac, "held_back" => held),
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let s = &self.shared;
        s.brokers().on_error(&error, reason, &s.log, &s.health);
    }
}

pub(super) fn keys_of(tpl: &TopicPartitionList) -> Vec<PartitionKey> {
    tpl.elements().iter().map(|e| PartitionKey { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

impl ConsumerContext for ReaderContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let s = &self.shared;
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let keys = keys_of(tpl);
                let Some(offsets) = s.load_offsets(&keys) else { return };
                let mut report = Vec::new();
                {
                    let mut parts = s.parts();
                    for key in &keys {
                        let stored = offsets.get(key).copied();
                        let offset = stored.map_or(Offset::Stored, Offset::Offset);
                        if let Err(e) = tpl.set_partition_offset(&key.topic, key.partition, offset) {
                            slog::error!(s.log, "cannot set start offset"; "partition" => key.to_string(), "error" => e.to_string());
                        }
                        let fence = stored.map_or(Fence::NoProgress, Fence::NextOffset);
                        parts.insert(key.clone(), super::pipeline::start_partition(s, key.clone(), fence));
                        report.push((key.clone(), stored));
                    }
                }
                let res = if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) };
                if let Err(e) = res {
                    slog::error!(s.log, "assign failed"; "error" => e.to_string());
                }
                // librdkafka keeps a partition's pause flag across unassign/assign; a partition
                // paused for backpressure before the rebalance would stay paused forever. Start
                // every assigned partition in the state the reader wants now.
                let res = if s.holding() { consumer.pause(tpl) } else { consumer.resume(tpl) };
                if let Err(e) = res {
                    slog::warn!(s.log, "setting pause state after assignment failed"; "error" => e.to_string());
                }
                slog::info!(s.log, "partitions assigned"; "partitions" => keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
                // An assignment came through the group coordinator: the brokers answer (said
                // here as well as by the next probe, so the log agrees with /ready).
                s.brokers().on_answer(&s.log, &s.health);
                s.health.do_send(Assigned(report));
            }
            _ => {
                if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    slog::error!(s.log, "rebalance error; dropping the assignment"; "error" => format!("{err:?}"));
                }
                let keys = if cooperative { keys_of(tpl) } else { s.parts().keys().cloned().collect() };
                // Stop cutting batches for these partitions; let in-flight ones finish so the
                // next owner starts from the latest committed offset.
                for key in &keys {
                    if let Some(p) = s.parts().get_mut(key) {
                        p.batcher.reset(Fence::NoProgress);
                        p.shared.resync.store(true, Ordering::SeqCst);
                    }
                }
                if !s.wait_idle(&keys, s.opts.revoke_timeout) {
                    slog::warn!(s.log, "revocation timed out waiting for in-flight batches; the fence keeps them safe");
                }
                commit_to_kafka(consumer, s, CommitMode::Sync);
                {
                    let mut parts = s.parts();
                    for key in &keys {
                        parts.remove(key);
                    }
                }
                let res = if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() };
                if let Err(e) = res {
                    slog::warn!(s.log, "unassign failed"; "error" => e.to_string());
                }
                slog::info!(s.log, "partitions revoked"; "partitions" => keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
                s.health.do_send(Revoked(keys));
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            slog::debug!(self.shared.log, "kafka offset commit failed (the database holds the truth)"; "error" => e.to_string());
        }
    }
}

/// Commit the database's progress to Kafka, for lag tools. Never a source of truth.
pub(super) fn commit_to_kafka(consumer: &BaseConsumer<ReaderContext>, s: &Shared, mode: CommitMode) {
    let pending: Vec<(PartitionKey, i64)> = {
        let mut c = s.kafka_commits.lock().unwrap_or_else(|e| e.into_inner());
        c.drain().collect()
    };
    if pending.is_empty() {
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for (k, next) in &pending {
        let _ = tpl.add_partition_offset(&k.topic, k.partition, Offset::Offset(*next));
    }
    if let Err(e) = consumer.commit(&tpl, mode) {
        slog::debug!(s.log, "kafka offset commit failed (the database holds the truth)"; "error" => e.to_string());
    }
}
