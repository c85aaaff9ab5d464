//! Pure: what `HealthReporter` has been told ([`Facts`]) and what it concludes — each
//! partition's lag, what stalls, when the Kafka reader is due a restart, `/ready`'s reasons.
//! `now` is always an argument, so the rules are tested without an actor or a clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lifecycle::ActorName;
use crate::records::PartitionKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActorState {
    Starting,
    Running,
    Restarting,
    Failed,
    Stopped,
}

#[derive(Debug)]
pub(super) struct ActorInfo {
    pub(super) state: ActorState,
    pub(super) restarts: u64,
    pub(super) recent: VecDeque<Instant>,
    pub(super) last_error: Option<String>,
}

impl Default for ActorInfo {
    fn default() -> Self {
        Self { state: ActorState::Starting, restarts: 0, recent: VecDeque::new(), last_error: None }
    }
}

#[derive(Debug, Default)]
pub(super) struct PartitionInfo {
    pub(super) next_offset: Option<i64>,
    pub(super) high_watermark: Option<i64>,
    /// Nothing deliverable lies beyond the last commit (see [`super::Watermark::caught_up`]).
    pub(super) caught_up: bool,
    /// See [`super::Watermark::starved`].
    pub(super) starved: bool,
    pub(super) last_commit: Option<chrono::DateTime<chrono::Utc>>,
    /// Last commit, or the assignment if none since: the start of a possible stall.
    pub(super) progress_at: Option<Instant>,
}

impl PartitionInfo {
    pub(super) fn lag(&self) -> Option<i64> {
        if self.caught_up {
            return Some(0);
        }
        match (self.high_watermark, self.next_offset) {
            (Some(hw), Some(n)) => Some((hw - n).max(0)),
            (Some(hw), None) => Some(hw.max(0)),
            _ => None,
        }
    }
}

/// Where the reader's consumer stands in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    /// Assigned nothing since `since`: the service started, the reader is restarting (its old
    /// consumer leaves the group first) or a fresh consumer is joining.
    Joining { since: Instant },
    /// The group has assigned this consumer its share (possibly nothing to own).
    Assigned,
}

/// What stalls at a given moment (nothing while consumption is paused).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Stalls {
    /// Partitions with lag above zero and no commit for the stall window.
    pub(super) partitions: Vec<PartitionKey>,
    /// How long the reader has been joining, once that is the stall window or longer: a reader
    /// the group never assigns has no lag to show and misses no commit, yet reads nothing.
    pub(super) joining_for: Option<Duration>,
}

/// Why the reader is due a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RestartCause {
    /// Partitions with lag and no commit of which the reader holds nothing.
    Starved(Vec<PartitionKey>),
    /// The group has assigned the reader nothing for this long.
    NeverAssigned(Duration),
}

/// Everything the other actors have told `HealthReporter` that readiness and stalls depend on.
#[derive(Debug)]
pub(super) struct Facts {
    pub(super) actors: BTreeMap<ActorName, ActorInfo>,
    pub(super) membership: Membership,
    pub(super) partitions: BTreeMap<PartitionKey, PartitionInfo>,
    /// The latest database round trip (`None`: none yet).
    pub(super) db: Option<Result<(), String>>,
    /// Since when the database has answered without a failure in between (probe, writes,
    /// breaker closed); `None` while it fails.
    pub(super) db_healthy_since: Option<Instant>,
    /// When consumption last resumed (an operator's pause lifted, the reader (re)started): a
    /// stall restart is only counted from then.
    pub(super) consuming_since: Instant,
    pub(super) paused: bool,
    /// Why no broker answers, while none does.
    pub(super) brokers_unreachable: Option<String>,
    /// Why the database circuit breaker is open, while it is.
    pub(super) breaker: Option<String>,
    /// When a stall last restarted the reader.
    pub(super) stall_restart_at: Option<Instant>,
    /// Why the schema registry does not answer, while it does not (records that need a schema
    /// not yet held wait).
    pub(super) registry_unavailable: Option<String>,
    /// When the registry last answered again after an outage.
    pub(super) registry_recovered_at: Option<Instant>,
}

impl Facts {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            actors: ActorName::ALL.into_iter().map(|n| (n, ActorInfo::default())).collect(),
            membership: Membership::Joining { since: now },
            partitions: BTreeMap::new(),
            db: None,
            db_healthy_since: None,
            consuming_since: now,
            paused: false,
            brokers_unreachable: None,
            breaker: None,
            stall_restart_at: None,
            registry_unavailable: None,
            registry_recovered_at: None,
        }
    }

    fn reader_running(&self) -> bool {
        self.actors.get(&ActorName::KafkaReader).is_some_and(|a| a.state == ActorState::Running)
    }

    /// Partitions with lag and no commit for `stall_after`, and a reader assigned nothing for as
    /// long. Nothing while an operator has paused consumption.
    pub(super) fn stalls(&self, now: Instant, stall_after: Duration) -> Stalls {
        if self.paused {
            return Stalls::default();
        }
        let partitions = self
            .partitions
            .iter()
            .filter(|(_, p)| p.lag().unwrap_or(0) > 0 && p.progress_at.is_some_and(|t| now.duration_since(t) >= stall_after))
            .map(|(k, _)| k.clone())
            .collect();
        let joining_for = match self.membership {
            Membership::Joining { since } => Some(now.duration_since(since)).filter(|d| *d >= stall_after),
            Membership::Assigned => None,
        };
        Stalls { partitions, joining_for }
    }

    /// Whether the reader is stuck and a fresh consumer should replace it: a partition with lag
    /// and no commit for `after` of which the reader holds nothing (*starved*), or no assignment
    /// while a broker answers for `after` but at least twice the group's `session` timeout —
    /// each only while the database kept answering, the breaker closed, nobody paused
    /// consumption and the reader runs. The clock starts at the latest of the last commit (or
    /// assignment, or joining), the database's recovery and the last resume, so outages and
    /// pauses never count; at most one restart per `after`.
    ///
    /// Why the floor: a consumer stopped before its JoinGroup is answered may not know its
    /// member id and cannot leave, so the group waits for its session to expire, then
    /// rebalances (the mock cluster: up to a session again). Restarting sooner abandons the join
    /// in progress and leaves one more such member: the group would never complete.
    pub(super) fn restart_due(&self, now: Instant, after: Duration, session: Duration) -> Option<RestartCause> {
        let healthy_since = self.db_healthy_since?;
        if self.paused
            || self.breaker.is_some()
            || self.registry_unavailable.is_some()
            || !self.reader_running()
            || self.stall_restart_at.is_some_and(|t| now.duration_since(t) < after)
        {
            return None;
        }
        // The clock starts once every service the pipeline waits on answers again.
        let healthy_since = self.registry_recovered_at.map_or(healthy_since, |r| r.max(healthy_since));
        let waited = |t: Instant| now.duration_since(t.max(healthy_since).max(self.consuming_since)) >= after;
        if let Membership::Joining { since } = self.membership {
            let joined_within = after.max(session.saturating_mul(2));
            let long_enough = now.duration_since(since.max(healthy_since).max(self.consuming_since)) >= joined_within;
            // Without a broker no consumer can join: a fresh one would do no better.
            return (self.brokers_unreachable.is_none() && long_enough).then(|| RestartCause::NeverAssigned(now.duration_since(since)));
        }
        let starved: Vec<PartitionKey> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.starved && p.lag().unwrap_or(0) > 0 && p.progress_at.is_some_and(waited))
            .map(|(k, _)| k.clone())
            .collect();
        (!starved.is_empty()).then_some(RestartCause::Starved(starved))
    }

    /// `/ready`'s reasons, one line each, starting with its code; none means ready.
    pub(super) fn reasons(&self, stalls: &Stalls, stall_after: Duration) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(e) = &self.brokers_unreachable {
            reasons.push(format!("brokers_unreachable: {e}"));
        }
        if let Membership::Joining { .. } = self.membership {
            reasons.push("not_assigned: the consumer group has not assigned partitions to the reader yet".to_string());
        }
        match &self.db {
            None => reasons.push("database_unknown: the database has not been reached yet".to_string()),
            Some(Err(e)) => reasons.push(format!("database_unreachable: {e}")),
            Some(Ok(())) => {}
        }
        if let Some(e) = &self.registry_unavailable {
            reasons.push(format!("schema_registry_unreachable: {e}"));
        }
        if let Some(reason) = &self.breaker {
            reasons.push(format!("breaker_open: the database is unavailable ({reason}); consumption is paused until it answers"));
        }
        for (name, a) in &self.actors {
            if a.state != ActorState::Running && *name != ActorName::HealthReporter {
                reasons.push(format!("actor_not_running: {name} is {:?}", a.state).to_lowercase());
            }
        }
        if !stalls.partitions.is_empty() {
            let names: Vec<String> = stalls.partitions.iter().map(ToString::to_string).collect();
            reasons.push(format!("stalled: no commit for {stall_after:?} with lag above zero on {}", names.join(", ")));
        }
        if let Some(joining) = stalls.joining_for {
            reasons.push(format!("stalled: no partitions assigned for {}s; nothing is read", joining.as_secs()));
        }
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(60);
    const RESTART: Duration = Duration::from_secs(120);
    /// librdkafka's default `session.timeout.ms`: twice this is less than `RESTART`.
    const SESSION: Duration = Duration::from_secs(45);

    fn key(partition: i32) -> PartitionKey {
        PartitionKey { topic: "t".into(), partition }
    }

    /// Everything healthy since `t0`: the database answers, every actor runs, the reader joining.
    fn healthy(t0: Instant) -> Facts {
        let mut f = Facts::new(t0);
        f.db = Some(Ok(()));
        f.db_healthy_since = Some(t0);
        for a in f.actors.values_mut() {
            a.state = ActorState::Running;
        }
        f
    }

    fn codes(f: &Facts, now: Instant) -> Vec<String> {
        f.reasons(&f.stalls(now, STALL), STALL).iter().map(|r| r.split(':').next().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn a_reader_with_no_assignment_is_not_assigned_then_stalled_then_due_a_restart() {
        let t0 = Instant::now();
        let f = healthy(t0);
        assert_eq!(codes(&f, t0), ["not_assigned"]);
        assert_eq!(f.restart_due(t0, RESTART, SESSION), None);
        // No partition, so no lag: the joining time alone says that nothing is read.
        let later = t0 + STALL;
        assert_eq!(f.stalls(later, STALL), Stalls { partitions: vec![], joining_for: Some(STALL) });
        assert_eq!(codes(&f, later), ["not_assigned", "stalled"]);
        assert!(f.reasons(&f.stalls(later, STALL), STALL)[1].contains("no partitions assigned for 60s"));
        assert_eq!(f.restart_due(later, RESTART, SESSION), None, "the restart waits longer than the stall");
        assert_eq!(f.restart_due(t0 + RESTART, RESTART, SESSION), Some(RestartCause::NeverAssigned(RESTART)));
    }

    #[test]
    fn an_assignment_of_nothing_is_ready_and_never_stalls() {
        let t0 = Instant::now();
        let mut f = healthy(t0);
        // More members than partitions: the group assigns this one nothing, rightly.
        f.membership = Membership::Assigned;
        let later = t0 + RESTART * 10;
        assert!(codes(&f, later).is_empty());
        assert_eq!(f.restart_due(later, RESTART, SESSION), None);
    }

    #[test]
    fn no_restart_for_a_reader_kept_from_joining_by_something_else() {
        let t0 = Instant::now();
        let due = t0 + RESTART;
        let restart = |change: &dyn Fn(&mut Facts)| {
            let mut f = healthy(t0);
            change(&mut f);
            f.restart_due(due, RESTART, SESSION)
        };
        assert!(restart(&|_| {}).is_some());
        // Assigning waits for the database's progress: an outage is no consumer fault.
        assert_eq!(restart(&|f| f.db_healthy_since = None), None);
        assert_eq!(restart(&|f| f.db_healthy_since = Some(t0 + Duration::from_secs(1))), None);
        assert_eq!(restart(&|f| f.breaker = Some("down".into())), None);
        // Records wait for a schema: an outage of the registry is no consumer fault either.
        assert_eq!(restart(&|f| f.registry_unavailable = Some("connection refused".into())), None);
        assert_eq!(restart(&|f| f.registry_recovered_at = Some(t0 + Duration::from_secs(1))), None);
        assert_eq!(restart(&|f| f.brokers_unreachable = Some("all brokers down".into())), None);
        assert_eq!(restart(&|f| f.paused = true), None);
        // Restarting already (its old consumer leaves first) or failed past its budget.
        assert_eq!(restart(&|f| f.actors.get_mut(&ActorName::KafkaReader).unwrap().state = ActorState::Restarting), None);
        // The reader started again since: its clock starts then.
        assert_eq!(restart(&|f| f.membership = Membership::Joining { since: t0 + Duration::from_secs(1) }), None);
        // Once per `after`.
        assert_eq!(restart(&|f| f.stall_restart_at = Some(t0 + Duration::from_secs(1))), None);
        assert!(restart(&|f| f.stall_restart_at = Some(t0)).is_some());
    }

    #[test]
    fn a_joining_reader_gets_twice_the_session_timeout_at_least() {
        let t0 = Instant::now();
        let f = healthy(t0);
        let (after, session) = (Duration::from_secs(3), Duration::from_secs(6));
        // A member that could not leave holds the group for a session, and the rebalance after
        // it may take as long: restarting every 3 s would abandon each join and never settle.
        assert_eq!(f.restart_due(t0 + Duration::from_secs(11), after, session), None);
        assert_eq!(f.restart_due(t0 + Duration::from_secs(12), after, session), Some(RestartCause::NeverAssigned(Duration::from_secs(12))));
        // A starved partition keeps its own threshold.
        let mut f = healthy(t0);
        f.membership = Membership::Assigned;
        let starved =
            PartitionInfo { next_offset: Some(0), high_watermark: Some(5), starved: true, progress_at: Some(t0), ..Default::default() };
        f.partitions.insert(key(0), starved);
        assert_eq!(f.restart_due(t0 + after, after, session), Some(RestartCause::Starved(vec![key(0)])));
    }

    #[test]
    fn a_paused_reader_is_not_stalled() {
        let t0 = Instant::now();
        let mut f = healthy(t0);
        f.paused = true;
        assert_eq!(codes(&f, t0 + RESTART), ["not_assigned"]);
    }

    #[test]
    fn lag_without_commits_stalls_and_a_starved_partition_is_due_a_restart() {
        let t0 = Instant::now();
        let mut f = healthy(t0);
        f.membership = Membership::Assigned;
        let lagging = PartitionInfo { next_offset: Some(10), high_watermark: Some(15), progress_at: Some(t0), ..Default::default() };
        f.partitions.insert(key(0), lagging);
        let at_end =
            PartitionInfo { next_offset: Some(10), high_watermark: Some(11), caught_up: true, progress_at: Some(t0), ..Default::default() };
        f.partitions.insert(key(1), at_end);
        assert!(codes(&f, t0 + STALL - Duration::from_millis(1)).is_empty());
        assert_eq!(f.stalls(t0 + STALL, STALL).partitions, [key(0)], "caught up is lag 0 however the offsets stand");
        assert_eq!(codes(&f, t0 + STALL), ["stalled"]);
        // The reader holds batches of it: the database, not the consumer, is slow.
        assert_eq!(f.restart_due(t0 + RESTART, RESTART, SESSION), None);
        f.partitions.get_mut(&key(0)).unwrap().starved = true;
        assert_eq!(f.restart_due(t0 + RESTART, RESTART, SESSION), Some(RestartCause::Starved(vec![key(0)])));
    }
}
