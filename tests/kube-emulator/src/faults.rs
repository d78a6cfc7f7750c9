//! Fault injection for tests: fail or delay the next requests that match a verb and resource,
//! and count what was served.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Fault {
    /// get, list, watch, create, update, patch, delete; `None` matches any.
    pub verb: Option<String>,
    /// Plural resource, with `/status` for the subresource; `None` matches any.
    pub resource: Option<String>,
    /// Matching requests to let through before this fault applies.
    pub skip: usize,
    /// How many matching requests it applies to.
    pub count: usize,
    pub action: FaultAction,
}

#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Answer with this HTTP status and a matching `Status` body.
    Fail(u16),
    /// Wait this long, then serve the request normally (if the client is still there).
    Delay(Duration),
}

#[derive(Default)]
pub struct Faults {
    rules: Mutex<Vec<Fault>>,
    counts: Mutex<HashMap<String, u64>>,
}

impl Fault {
    pub fn fail(verb: &str, resource: &str, status: u16, count: usize) -> Self {
        Self {
            verb: Some(verb.into()),
            resource: Some(resource.into()),
            skip: 0,
            count,
            action: FaultAction::Fail(status),
        }
    }

    pub fn delay(verb: &str, resource: &str, delay: Duration, count: usize) -> Self {
        Self {
            verb: Some(verb.into()),
            resource: Some(resource.into()),
            skip: 0,
            count,
            action: FaultAction::Delay(delay),
        }
    }

    pub fn after(mut self, skip: usize) -> Self {
        self.skip = skip;
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb) && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

impl Faults {
    pub fn add(&self, fault: Fault) {
        self.rules.lock().unwrap().push(fault);
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Counts the request and returns the fault that applies to it, if any.
    pub fn take(&self, verb: &str, resource: &str) -> Option<FaultAction> {
        *self.counts.lock().unwrap().entry(format!("{verb} {resource}")).or_default() += 1;
        let mut rules = self.rules.lock().unwrap();
        let index = rules.iter().position(|f| f.matches(verb, resource))?;
        let rule = &mut rules[index];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        let action = rule.action.clone();
        rule.count -= 1;
        if rule.count == 0 {
            rules.remove(index);
        }
        Some(action)
    }

    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.counts.lock().unwrap().get(&format!("{verb} {resource}")).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_apply_after_skip_for_count_then_expire() {
        let faults = Faults::default();
        faults.add(Fault::fail("patch", "widgets/status", 500, 2).after(1));
        assert!(faults.take("patch", "widgets/status").is_none());
        assert!(faults.take("get", "widgets").is_none());
        assert!(matches!(faults.take("patch", "widgets/status"), Some(FaultAction::Fail(500))));
        assert!(matches!(faults.take("patch", "widgets/status"), Some(FaultAction::Fail(500))));
        assert!(faults.take("patch", "widgets/status").is_none());
        assert_eq!(faults.count("patch", "widgets/status"), 4);
    }
}
