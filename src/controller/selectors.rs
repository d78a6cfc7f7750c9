//! IAMRoleSelectors: watched into the context (which identity reconciles which namespace), and
//! each one's status kept: whether its role can be assumed, and the account it acts in.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::{CachedObject, Context};
use crate::conditions::{self, Phase};
use crate::crd::{FIELD_MANAGER, IAMRoleSelector, IAMRoleSelectorStatus};
use crate::roles::{self, Identity};

/// How often a selector's role is assumed again to refresh its Ready condition.
const RECHECK: Duration = Duration::from_secs(600);
/// How often a cluster without the IAMRoleSelector CRD is checked for it.
const INSTALL_CHECK: Duration = Duration::from_secs(30);
/// How soon a failed list of the selectors is tried again.
const LIST_RETRY: Duration = Duration::from_secs(2);

/// Starts watching selectors; returns once they are listed (at once when the CRD is not
/// installed: no selector, every object uses the operator's own identity, until it is). The
/// returned task runs until dropped.
pub async fn start(ctx: Arc<Context>) -> tokio::task::JoinHandle<()> {
    let api: Api<IAMRoleSelector> = Api::all(ctx.client.clone());
    let installed = installed(&api).await;
    let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        if !installed {
            info!("the IAMRoleSelector CRD is not installed: every object uses the operator's own AWS identity");
            while !self::installed(&api).await {
                tokio::time::sleep(INSTALL_CHECK).await;
            }
        }
        let controller = Controller::new(api, watcher::Config::default().any_semantic());
        ctx.role_selectors.follow(controller.store());
        let store = controller.store();
        let mut synced = Some(synced_tx);
        let waiting = async move {
            let _ = store.wait_until_ready().await;
            info!(selectors = store.state().len(), "IAMRoleSelectors listed");
            if let Some(synced) = synced.take() {
                let _ = synced.send(());
            }
        };
        // Objects waiting for a selector (or stalled by one) are woken when selectors change.
        let changes = {
            let ctx = ctx.clone();
            watcher(Api::<IAMRoleSelector>::all(ctx.client.clone()), watcher::Config::default().any_semantic())
                .default_backoff()
                .touched_objects()
                .for_each(move |_| {
                    ctx.role_selectors.changed();
                    async {}
                })
        };
        let running = controller.run(check, |_, _, _| Action::requeue(RECHECK), ctx).for_each(|_| async {});
        futures::join!(waiting, running, changes);
    });
    if installed {
        let _ = synced_rx.await;
    }
    task
}

/// Whether the IAMRoleSelector CRD is installed. Only a 404 says it is not: any other failure (a
/// 500, RBAC not bound yet) is asked again, since taking it for "no selectors" would reconcile
/// every namespace with the operator's own identity.
async fn installed(api: &Api<IAMRoleSelector>) -> bool {
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return true,
            Err(kube::Error::Api(status)) if status.code == 404 => return false,
            Err(err) => {
                warn!(%err, "cannot list IAMRoleSelectors; nothing is reconciled until they are listed (retrying)");
                tokio::time::sleep(LIST_RETRY).await;
            }
        }
    }
}

/// Ready reasons of objects that a change of the selectors can unblock.
const WAITS_ON_SELECTORS: [&str; 4] =
    ["NoRoleSelector", "AmbiguousRoleSelector", "RoleSelectorGone", "ImmutableFieldChanged"];

/// Objects of `store` stalled for want of the right selector, each time the selectors change,
/// instead of at their next resync.
pub fn woken(
    ctx: Arc<Context>,
    store: Store<CachedObject>,
) -> impl Stream<Item = ObjectRef<CachedObject>> + Send + 'static {
    futures::stream::unfold(ctx.role_selectors.subscribe(), |mut changes| async move {
        changes.changed().await.ok()?;
        Some(((), changes))
    })
    .flat_map(move |()| {
        let waiting: Vec<_> = store
            .state()
            .iter()
            .filter(|cached| {
                cached.decode().is_ok_and(|obj| {
                    obj.status.as_ref().and_then(|s| s.condition(conditions::READY)).is_some_and(|ready| {
                        ready.status == "False" && WAITS_ON_SELECTORS.contains(&ready.reason.as_str())
                    })
                })
            })
            .map(|cached| super::reference_to(cached.as_ref()))
            .collect();
        futures::stream::iter(waiting)
    })
}

/// Assumes the selector's role and records whether that worked, and the account.
async fn check(selector: Arc<IAMRoleSelector>, ctx: Arc<Context>) -> Result<Action, kube::Error> {
    let identity = roles::choose_for(&selector);
    let region = ctx.settings.default_region.clone().unwrap_or_else(|| "us-east-1".into());
    let (phase, account) = match identity {
        Err(failure) => (Phase::from_failure(&failure), None),
        Ok(Identity::Own) => unreachable!("a selector always names a role"),
        Ok(Identity::Role(role)) => match ctx.aws.caller_account(&region, &role).await {
            Ok(account) if account == role.account_id => {
                (Phase::Ready { message: format!("Assumed {} (account {account}).", role.arn) }, Some(account))
            }
            Ok(account) => (
                Phase::Stalled {
                    reason: "AccountMismatch",
                    message: format!("Assumed {}, but STS reports account {account}.", role.arn),
                },
                None,
            ),
            Err(err) => {
                warn!(selector = %selector.name_any(), role = %role.arn, error = %err.message, "could not assume the role");
                let why = match err.message.strip_prefix(crate::aws::CREDENTIALS_REFUSED) {
                    Some(refused) => refused.to_owned(),
                    None => crate::aws::aws_error_code(&err.message)
                        .unwrap_or_else(|| "no answer; see the operator's log".into()),
                };
                let phase = Phase::Stalled {
                    reason: "AssumeRoleFailed",
                    message: format!(
                        "Could not assume {} ({why}); check its trust policy and the operator's sts:AssumeRole \
                         permission.",
                        role.arn
                    ),
                };
                (phase, None)
            }
        },
    };
    let previous = selector.status.clone().unwrap_or_default();
    let now = Timestamp::now().round(Unit::Second).unwrap_or_else(|_| Timestamp::now()).to_string();
    let status = IAMRoleSelectorStatus {
        account_id: account,
        observed_generation: selector.metadata.generation,
        conditions: conditions::next(&previous.conditions, &phase, selector.metadata.generation, &now)
            .into_iter()
            .filter(|c| c.type_ == conditions::READY)
            .collect(),
    };
    if status != previous {
        write_status(&ctx.client, &selector.name_any(), &status).await?;
    }
    Ok(Action::requeue(RECHECK))
}

async fn write_status(client: &Client, name: &str, status: &IAMRoleSelectorStatus) -> Result<(), kube::Error> {
    let api: Api<IAMRoleSelector> = Api::all(client.clone());
    let patch = json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IAMRoleSelector",
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_aws_error_is_taken_out_of_the_sdks_text() {
        let text = r#"dispatch failure: other: an error occurred while loading credentials: service error: unhandled error (AccessDenied): Error { code: "AccessDenied", message: "User is not authorized to perform: sts:AssumeRole" } (DispatchFailure(...))"#;
        assert_eq!(
            crate::aws::aws_error_code(text).as_deref(),
            Some("AccessDenied: User is not authorized to perform: sts:AssumeRole")
        );
        assert_eq!(crate::aws::aws_error_code("connection refused"), None);
    }
}
