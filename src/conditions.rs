//! kstatus conditions (Ready, Reconciling, Stalled) from what a reconcile found.

use crate::crd::Condition;
use crate::failure::Failure;

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
/// Ready reasons under managementPolicy Observe.
pub const IN_SYNC: &str = "InSync";
pub const DIFFERS: &str = "Differs";

/// Where an object stands after a reconcile step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// AWS matches the spec.
    Ready { message: String },
    /// Work is in flight or will be retried.
    Progressing { reason: &'static str, message: String },
    /// Nothing will change until the spec or AWS does.
    Stalled { reason: &'static str, message: String },
    /// managementPolicy Observe: Ready says whether AWS matches the spec (InSync) or not
    /// (Differs). Neither is work in progress nor an error, so Reconciling and Stalled are False.
    Observed { in_sync: bool, message: String },
}

impl Phase {
    pub fn from_failure(failure: &Failure) -> Self {
        let (reason, message) = (failure.reason(), failure.message().to_owned());
        if failure.is_stalled() { Self::Stalled { reason, message } } else { Self::Progressing { reason, message } }
    }
}

/// The three conditions for `phase`. A condition whose status is unchanged keeps its
/// lastTransitionTime, so a steady object's status never changes.
pub fn next(previous: &[Condition], phase: &Phase, generation: Option<i64>, now: &str) -> Vec<Condition> {
    let (ready, reconciling, stalled, reason, message) = match phase {
        Phase::Ready { message } => (true, false, false, "Available", message.as_str()),
        Phase::Progressing { reason, message } => (false, true, false, *reason, message.as_str()),
        Phase::Stalled { reason, message } => (false, false, true, *reason, message.as_str()),
        Phase::Observed { in_sync, message } => {
            (*in_sync, false, false, if *in_sync { IN_SYNC } else { DIFFERS }, message.as_str())
        }
    };
    [(READY, ready), (RECONCILING, reconciling), (STALLED, stalled)]
        .into_iter()
        .map(|(type_, is_true)| {
            let status = if is_true { "True" } else { "False" };
            // Ready always explains itself; Reconciling and Stalled only while they hold.
            let message = if is_true || type_ == READY { message } else { "" };
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == type_ && c.status == status)
                .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
            Condition {
                type_: type_.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message: message.to_owned(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_type<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn ready_sets_the_three_conditions() {
        let conditions = next(&[], &Phase::Ready { message: "ok".into() }, Some(3), "T1");
        assert_eq!(by_type(&conditions, READY).status, "True");
        assert_eq!(by_type(&conditions, READY).reason, "Available");
        assert_eq!(by_type(&conditions, RECONCILING).status, "False");
        assert_eq!(by_type(&conditions, STALLED).status, "False");
        assert!(conditions.iter().all(|c| c.observed_generation == Some(3) && c.last_transition_time == "T1"));
        assert_eq!(by_type(&conditions, READY).message, "ok");
        assert_eq!(by_type(&conditions, STALLED).message, "", "a False Stalled has nothing to say");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let first = next(&[], &Phase::Progressing { reason: "Creating", message: "m".into() }, Some(1), "T1");
        let again = next(&first, &Phase::Progressing { reason: "Throttled", message: "n".into() }, Some(1), "T2");
        assert!(again.iter().all(|c| c.last_transition_time == "T1"));
        assert_eq!(by_type(&again, READY).reason, "Throttled");

        let ready = next(&again, &Phase::Ready { message: "ok".into() }, Some(1), "T3");
        assert_eq!(by_type(&ready, READY).last_transition_time, "T3");
        assert_eq!(by_type(&ready, RECONCILING).last_transition_time, "T3");
        assert_eq!(by_type(&ready, STALLED).last_transition_time, "T1");
    }

    #[test]
    fn observing_sets_ready_only() {
        let differs = next(&[], &Phase::Observed { in_sync: false, message: "AWS differs in x".into() }, Some(4), "T");
        assert_eq!(by_type(&differs, READY).status, "False");
        assert_eq!(by_type(&differs, READY).reason, DIFFERS);
        assert_eq!(by_type(&differs, READY).message, "AWS differs in x");
        assert!(!is_true(&differs, RECONCILING) && !is_true(&differs, STALLED), "neither work nor an error");
        let in_sync = next(&differs, &Phase::Observed { in_sync: true, message: "ok".into() }, Some(4), "T2");
        assert!(is_true(&in_sync, READY));
        assert_eq!(by_type(&in_sync, READY).reason, IN_SYNC);
        assert_eq!(by_type(&in_sync, READY).last_transition_time, "T2");
        assert_eq!(by_type(&in_sync, STALLED).last_transition_time, "T");
    }

    #[test]
    fn stalled_failures_and_retryable_failures_map_to_different_phases() {
        let stalled = Phase::from_failure(&Failure::stalled("BadRequest", "AWS refused it"));
        let conditions = next(&[], &stalled, Some(2), "T");
        assert!(is_true(&conditions, STALLED));
        assert!(!is_true(&conditions, READY));
        assert_eq!(by_type(&conditions, STALLED).message, "AWS refused it");

        let dependency = Phase::from_failure(&Failure::DependencyNotFound { message: "no integration".into() });
        let conditions = next(&[], &dependency, Some(2), "T");
        assert!(is_true(&conditions, RECONCILING));
        assert!(!is_true(&conditions, STALLED));
        assert_eq!(by_type(&conditions, READY).reason, "DependencyNotFound");
    }
}
