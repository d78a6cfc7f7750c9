//! Which AWS identity reconciles an object: the operator's own, or the IAM role of the one
//! IAMRoleSelector that selects the object's namespace. Pure decisions; the AWS side (STS) is in
//! `aws`, the lookups in `controller::accounts`.

use std::collections::BTreeMap;
use std::sync::RwLock;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::crd::{IAMRoleSelector, LabelRequirement, NamespaceSelector};
use crate::failure::Failure;

/// A role to assume, as the AWS clients are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Role {
    /// The IAMRoleSelector that chose it, for messages.
    pub selector: String,
    pub arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
    /// The role's account, from its ARN.
    pub account_id: String,
}

/// The identity an object is reconciled with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The operator's own credentials (IRSA, Pod Identity, the AWS chain).
    Own,
    Role(Role),
}

impl Identity {
    /// The account recorded in status: the role's; nothing for the operator's own identity.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Self::Own => None,
            Self::Role(role) => Some(&role.account_id),
        }
    }
}

/// The account of an IAM role ARN (`arn:aws:iam::111111111111:role/x`).
pub fn account_of(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
}

pub const DEFAULT_SESSION_NAME: &str = "integration-response-operator";

/// The selectors that select `namespace` (with `labels`), by name.
pub fn selecting<'a>(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    selectors: &'a [IAMRoleSelector],
) -> Vec<&'a IAMRoleSelector> {
    let mut found: Vec<&IAMRoleSelector> =
        selectors.iter().filter(|s| selects(&s.spec.namespace_selector, namespace, labels)).collect();
    found.sort_by_key(|s| s.name_any());
    found
}

/// The identity for objects of `namespace`: the one selector's role, or the operator's own when
/// none selects it (unless `require_selector`). Two selectors are refused, naming both.
pub fn choose(
    namespace: &str,
    labels: &BTreeMap<String, String>,
    selectors: &[IAMRoleSelector],
    require_selector: bool,
) -> Result<Identity, Failure> {
    match selecting(namespace, labels, selectors)[..] {
        [] if require_selector => Err(Failure::stalled(
            "NoRoleSelector",
            format!(
                "No IAMRoleSelector selects namespace {namespace}, and the operator runs with \
                 --require-role-selector: ask a cluster administrator for one."
            ),
        )),
        [] => Ok(Identity::Own),
        [one] => role_of(one).map(Identity::Role),
        [first, second, ..] => Err(Failure::stalled(
            "AmbiguousRoleSelector",
            format!(
                "IAMRoleSelectors {} and {} both select namespace {namespace}; a namespace must have one role. \
                 Narrow their namespaceSelectors.",
                first.name_any(),
                second.name_any()
            ),
        )),
    }
}

/// The identity a selector gives (always a role, or why its ARN is unusable).
pub fn choose_for(selector: &IAMRoleSelector) -> Result<Identity, Failure> {
    role_of(selector).map(Identity::Role)
}

fn role_of(selector: &IAMRoleSelector) -> Result<Role, Failure> {
    let account = account_of(&selector.spec.role_arn).ok_or_else(|| {
        Failure::stalled(
            "InvalidRoleSelector",
            format!(
                "IAMRoleSelector {} has roleArn {}, which names no account.",
                selector.name_any(),
                selector.spec.role_arn
            ),
        )
    })?;
    Ok(Role {
        selector: selector.name_any(),
        arn: selector.spec.role_arn.clone(),
        external_id: selector.spec.external_id.clone(),
        session_name: selector.spec.session_name.clone().unwrap_or_else(|| DEFAULT_SESSION_NAME.into()),
        account_id: account.to_owned(),
    })
}

/// Whether `selector` selects the namespace: by name, or by labels (either is enough). A label
/// selector without any label or requirement selects nothing (unlike a Kubernetes label selector,
/// where it selects everything): an empty `matchLabels: {}` beside `names`, as templates often
/// render an unset value, must not give the role to every namespace.
pub fn selects(selector: &NamespaceSelector, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
    if selector.names.as_ref().is_some_and(|names| names.iter().any(|n| n == namespace)) {
        return true;
    }
    if !by_labels(selector) {
        return false;
    }
    let labels_match = selector.match_labels.iter().flatten().all(|(key, value)| labels.get(key) == Some(value));
    labels_match && selector.match_expressions.iter().flatten().all(|r| meets(r, labels))
}

/// Whether any selector looks at labels (only then are namespace labels read).
pub fn needs_labels(selectors: &[IAMRoleSelector]) -> bool {
    selectors.iter().any(|s| by_labels(&s.spec.namespace_selector))
}

/// Whether the selector names at least one label or requirement.
fn by_labels(selector: &NamespaceSelector) -> bool {
    selector.match_labels.as_ref().is_some_and(|labels| !labels.is_empty())
        || selector.match_expressions.as_ref().is_some_and(|requirements| !requirements.is_empty())
}

fn meets(requirement: &LabelRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&requirement.key);
    let values = requirement.values.as_deref().unwrap_or_default();
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // The CRD allows only the four.
        _ => false,
    }
}

/// The IAMRoleSelectors: their watch's store once it runs (or a fixed list, in tests).
pub struct RoleSelectors {
    fixed: RwLock<Vec<IAMRoleSelector>>,
    store: RwLock<Option<Store<IAMRoleSelector>>>,
    /// Bumped whenever a selector is added, changed or removed.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for RoleSelectors {
    fn default() -> Self {
        Self { fixed: RwLock::default(), store: RwLock::default(), changes: tokio::sync::watch::channel(0).0 }
    }
}

impl RoleSelectors {
    /// A selector was added, changed or removed.
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Hears every later [`Self::changed`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Sets the selectors by hand (tests).
    pub fn replace(&self, selectors: Vec<IAMRoleSelector>) {
        *self.fixed.write().expect("selectors lock") = selectors;
    }

    /// Reads them from a watch's store from now on.
    pub fn follow(&self, store: Store<IAMRoleSelector>) {
        *self.store.write().expect("selectors lock") = Some(store);
    }

    pub fn snapshot(&self) -> Vec<IAMRoleSelector> {
        match &*self.store.read().expect("selectors lock") {
            Some(store) => store.state().iter().map(|s| (**s).clone()).collect(),
            None => self.fixed.read().expect("selectors lock").clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn selector(name: &str, arn: &str, namespace_selector: serde_json::Value) -> IAMRoleSelector {
        serde_json::from_value(json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IAMRoleSelector",
            "metadata": {"name": name},
            "spec": {"roleArn": arn, "namespaceSelector": namespace_selector},
        }))
        .unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn a_namespace_is_selected_by_name_or_by_labels() {
        let by_name: NamespaceSelector = serde_json::from_value(json!({"names": ["team-a"]})).unwrap();
        assert!(selects(&by_name, "team-a", &labels(&[])));
        assert!(!selects(&by_name, "team-b", &labels(&[("team", "a")])));
        let by_labels: NamespaceSelector = serde_json::from_value(json!({
            "matchLabels": {"tenant": "a"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]},
                                 {"key": "frozen", "operator": "DoesNotExist"}],
        }))
        .unwrap();
        assert!(selects(&by_labels, "x", &labels(&[("tenant", "a"), ("env", "prod")])));
        assert!(!selects(&by_labels, "x", &labels(&[("tenant", "a"), ("env", "dev")])));
        assert!(!selects(&by_labels, "x", &labels(&[("tenant", "a"), ("env", "prod"), ("frozen", "yes")])));
        assert!(!selects(&by_labels, "x", &labels(&[("env", "prod")])));
        let not_in: NamespaceSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["shared"]},
                                 {"key": "tenant", "operator": "Exists"}]}))
        .unwrap();
        assert!(selects(&not_in, "x", &labels(&[("tenant", "b")])));
        assert!(!selects(&not_in, "x", &labels(&[("tenant", "b"), ("tier", "shared")])));
    }

    #[test]
    fn one_selector_gives_its_role_none_the_own_identity_two_are_refused() {
        let a = selector("a", "arn:aws:iam::111111111111:role/x", json!({"names": ["team-a"]}));
        let b = selector("b", "arn:aws:iam::222222222222:role/y", json!({"matchLabels": {"tenant": "b"}}));
        let selectors = [a, b];
        let Identity::Role(role) = choose("team-a", &labels(&[]), &selectors, false).unwrap() else { panic!() };
        assert_eq!((role.selector.as_str(), role.account_id.as_str()), ("a", "111111111111"));
        assert_eq!(role.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(choose("other", &labels(&[]), &selectors, false).unwrap(), Identity::Own);
        let refused = choose("other", &labels(&[]), &selectors, true).unwrap_err();
        assert_eq!(refused.reason(), "NoRoleSelector");
        assert!(refused.is_stalled());
        let both = choose("team-a", &labels(&[("tenant", "b")]), &selectors, false).unwrap_err();
        assert_eq!(both.reason(), "AmbiguousRoleSelector");
        assert!(
            both.message().starts_with("IAMRoleSelectors a and b both select namespace team-a"),
            "{}",
            both.message()
        );
    }

    #[test]
    fn the_account_comes_from_the_role_arn() {
        assert_eq!(account_of("arn:aws:iam::111111111111:role/x"), Some("111111111111"));
        assert_eq!(account_of("arn:aws-us-gov:iam::222222222222:role/path/y"), Some("222222222222"));
        assert_eq!(account_of("arn:aws:iam::1111:role/x"), None);
        assert_eq!(account_of("not an arn"), None);
    }
}
