//! Whether the brokers answer, told once per change. librdkafka retries a lost broker every few
//! tens of milliseconds and reports each failure; an operator needs one line when they go, a
//! reminder while they stay away, one line when they are back, and `/ready` saying why.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::health::BrokersUnreachable;
use crate::throttle::{Throttle, REMINDER_EVERY};

/// How often, while the brokers are unreachable, the poll thread asks for metadata to learn that
/// they are back (librdkafka reports failures, not recoveries).
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);
/// The probe's wait: it runs on the poll thread, which has nothing to poll while they are away.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

struct Down {
    since: Instant,
    reminded: Instant,
    probed: Instant,
    failures: u64,
}

/// What the consumer context and the poll thread know about broker reachability.
#[derive(Default)]
pub(super) struct Brokers {
    down: Option<Down>,
    pub(super) throttle: Throttle,
}

/// The error codes that mean no broker can be reached at all (not one broker among several).
fn unreachable(error: &KafkaError) -> bool {
    matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::AllBrokersDown))
}

impl Brokers {
    /// An error from librdkafka's error callback: logged once per change of state or kind, and
    /// again once a minute while it lasts.
    pub(super) fn on_error(
        &mut self,
        error: &KafkaError,
        reason: &str,
        log: &slog::Logger,
        health: &actix::Addr<crate::health::HealthReporter>,
    ) {
        let now = Instant::now();
        let text = crate::storage::error::one_line(&format!("{error}: {reason}"));
        if unreachable(error) {
            match &mut self.down {
                None => {
                    slog::warn!(log, "kafka brokers unreachable; retrying"; "error" => &text);
                    self.down = Some(Down { since: now, reminded: now, probed: now, failures: 0 });
                    health.do_send(BrokersUnreachable(Some(text)));
                }
                Some(down) => {
                    down.failures += 1;
                    if now.duration_since(down.reminded) >= REMINDER_EVERY {
                        down.reminded = now;
                        slog::warn!(log, "kafka brokers still unreachable"; "error" => &text,
                            "for_s" => now.duration_since(down.since).as_secs(), "failures" => down.failures);
                    }
                }
            }
            return;
        }
        self.throttled("kafka client error", error, &text, log);
    }

    /// An error the consumer's poll returned (a fetch failing while a broker is away, …): one
    /// line per code, then once a minute, as the client's own errors.
    pub(super) fn on_consume_error(&mut self, error: &KafkaError, log: &slog::Logger) {
        self.throttled("consume error", error, &crate::storage::error::one_line(&error.to_string()), log);
    }

    fn throttled(&mut self, what: &'static str, error: &KafkaError, text: &str, log: &slog::Logger) {
        let kind = format!("{what}:{:?}", error.rdkafka_error_code());
        match self.throttle.admit(&kind, Instant::now()) {
            Some(held) => slog::warn!(log, "{}", what; "error" => text, "held_back" => held),
            None => slog::debug!(log, "{}", what; "error" => text),
        }
    }

    /// Whether a probe is due (the brokers are down and the last probe is old enough).
    pub(super) fn probe_due(&mut self, now: Instant) -> bool {
        match &mut self.down {
            Some(down) if now.duration_since(down.probed) >= PROBE_EVERY => {
                down.probed = now;
                true
            }
            _ => false,
        }
    }

    /// A broker answered: back to normal, said once.
    pub(super) fn on_answer(&mut self, log: &slog::Logger, health: &actix::Addr<crate::health::HealthReporter>) {
        if let Some(down) = self.down.take() {
            slog::info!(log, "kafka brokers reachable again"; "unreachable_for_s" => format!("{:.1}", down.since.elapsed().as_secs_f64()));
            health.do_send(BrokersUnreachable(None));
        }
    }
}
