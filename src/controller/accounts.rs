//! Which identity (account) reconciles an object: the IAMRoleSelector that selects its
//! namespace, read from the selectors' watch and, when selectors use labels, the namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, ResourceExt};

use super::Context;
use crate::crd::{IntegrationResponse, IntegrationResponseStatus};
use crate::failure::Failure;
use crate::roles::{self, Identity};

/// The identity for `obj` now.
pub async fn identity(ctx: &Context, obj: &IntegrationResponse) -> Result<Identity, Failure> {
    let selectors = ctx.role_selectors.snapshot();
    let namespace = obj.namespace().unwrap_or_default();
    let labels = if roles::needs_labels(&selectors) { labels_of(ctx, &namespace).await? } else { BTreeMap::new() };
    roles::choose(&namespace, &labels, &selectors, ctx.settings.require_role_selector)
}

/// The identity to delete `obj`'s response with: the one it was created with (status), which
/// must still be what the namespace's selector gives. Otherwise the response would be looked
/// for in the wrong account (or with a role no longer granted): the finalizer stays.
pub async fn identity_for_cleanup(
    ctx: &Context,
    obj: &IntegrationResponse,
    status: &IntegrationResponseStatus,
) -> Result<Identity, Failure> {
    let recorded = status.account_id.as_deref();
    let now = match identity(ctx, obj).await {
        Ok(now) => Some(now),
        // No selector any more with --require-role-selector: fine if none was used.
        Err(failure) if failure.reason() == "NoRoleSelector" => None,
        Err(failure) => return Err(failure),
    };
    match (recorded, now) {
        (None, Some(Identity::Own)) | (None, None) => Ok(Identity::Own),
        (Some(account), Some(Identity::Role(role))) if role.account_id == account => Ok(Identity::Role(role)),
        (recorded, _) => {
            let was = recorded.map_or("with the operator's own identity".to_owned(), |a| format!("in account {a}"));
            Err(Failure::stalled(
                "RoleSelectorGone",
                format!(
                    "The integration response was created {was}, and no IAMRoleSelector gives namespace {} that \
                     identity now, so it cannot be deleted. Restore the IAMRoleSelector, or set deletionPolicy: \
                     Retain to let this object go and keep the response in AWS.",
                    obj.namespace().unwrap_or_default()
                ),
            ))
        }
    }
}

async fn labels_of(ctx: &Context, namespace: &str) -> Result<BTreeMap<String, String>, Failure> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    match namespaces.get_opt(namespace).await {
        Ok(found) => Ok(found.map(|ns| ns.labels().clone()).unwrap_or_default()),
        Err(err) => Err(Failure::Transient {
            reason: "KubernetesUnavailable",
            message: format!(
                "Could not read namespace {namespace} to match IAMRoleSelectors; retrying. ({})",
                match &err {
                    kube::Error::Api(status) => format!("HTTP {}", status.code),
                    _ => "no answer".into(),
                }
            ),
        }),
    }
}
