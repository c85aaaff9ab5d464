//! librdkafka's in-process mock cluster: a Kafka stand-in for the demo and the tests.
//!
//! The cluster lives inside a producer client created with `test.mock.num.brokers`; it stays up
//! as long as that producer does. Consumers reach it through [`MockKafka::bootstrap_servers`].

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedHeaders;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

pub struct MockKafka {
    producer: ThreadedProducer<DefaultProducerContext>,
    bootstrap: String,
}

impl MockKafka {
    /// Start a mock cluster of `brokers` brokers.
    pub fn start(brokers: u32) -> KafkaResult<Self> {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "1000000")
            .set("log_level", "3")
            .create()?;
        let bootstrap =
            producer.client().mock_cluster().ok_or(KafkaError::MockCluster(rdkafka::types::RDKafkaErrorCode::Fail))?.bootstrap_servers();
        // A fresh group otherwise waits ~3 s (group.initial.rebalance.delay.ms) before its
        // first assignment.
        // SAFETY: the producer owns the mock cluster handle for as long as it lives (it outlives
        // this call); the setter only stores an integer in the cluster's configuration.
        unsafe {
            let mc = rdkafka_sys::rd_kafka_handle_mock_cluster(producer.client().native_ptr());
            rdkafka_sys::rd_kafka_mock_group_initial_rebalance_delay_ms(mc, 0);
        }
        Ok(Self { producer, bootstrap })
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The fault-injection handle (broker down/up, request errors, round-trip delay).
    pub fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        self.producer.client().mock_cluster().expect("the producer owns a mock cluster")
    }

    pub fn create_topic(&self, topic: &str, partitions: i32) -> KafkaResult<()> {
        self.cluster().create_topic(topic, partitions, 1)
    }

    /// Queue one record (retrying while the local queue is full).
    pub fn send(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> KafkaResult<()> {
        self.send_record(topic, partition, key, payload, header_list(headers.iter().map(|(k, v)| (k.as_bytes(), *v))))
    }

    /// [`MockKafka::send`] with header names as bytes: Kafka takes any, not only UTF-8.
    pub fn send_raw_names(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
    ) -> KafkaResult<()> {
        self.send_record(topic, partition, key, payload, header_list(headers.iter().copied()))
    }

    fn send_record(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        h: OwnedHeaders,
    ) -> KafkaResult<()> {
        loop {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).headers(h.clone());
            if let Some(p) = partition {
                record = record.partition(p);
            }
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(p) = payload {
                record = record.payload(p);
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Wait until every queued record is acknowledged.
    pub fn flush(&self) -> KafkaResult<()> {
        self.producer.flush(Duration::from_secs(60))
    }
}

/// A header list with names as bytes. rdkafka's `OwnedHeaders::insert` takes names as `&str`, so
/// the headers are added through librdkafka: `as_borrowed` is the native list itself (rdkafka
/// casts it the same way), freshly created and not shared yet.
fn header_list<'a>(headers: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>) -> OwnedHeaders {
    let list = OwnedHeaders::new_with_capacity(headers.len());
    let native = std::ptr::from_ref(list.as_borrowed()).cast_mut().cast::<rdkafka_sys::rd_kafka_headers_t>();
    for (name, value) in headers {
        // SAFETY: `native` is the list `list` owns; librdkafka copies name and value.
        let err = unsafe {
            rdkafka_sys::rd_kafka_header_add(native, name.as_ptr().cast(), name.len() as isize, value.as_ptr().cast(), value.len() as isize)
        };
        // Only a read-only list refuses; this one is new.
        assert_eq!(err, rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, "adding a header to a new list");
    }
    list
}
