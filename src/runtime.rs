//! Wires the process together: Kubernetes and AWS clients, admin server, leader election and
//! the controller, with a bounded graceful shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::DeserializeGuard;
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState};
use crate::aws::AwsClients;
use crate::cli::Args;
use crate::controller::{self, Context, EventRecorder, Settings, WatchScope};
use crate::crd::IntegrationResponse;
use crate::leader::{Elector, LeaseConfig};
use crate::metrics::Metrics;
use crate::pacing::Pacer;
use crate::shutdown::Shutdown;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals();
    let client = Client::try_default().await.context("no Kubernetes client: set KUBECONFIG or run in a cluster")?;
    let identity = identity(args.identity.clone(), std::env::var("HOSTNAME").ok());
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let pacer = Arc::new(Pacer::new(args.aws_rps, args.aws_burst));
    let aws = AwsClients::from_env(pacer, metrics.clone()).await;
    let events = EventRecorder::new(client.clone(), "integration-response-operator", &identity);
    let settings = Settings {
        default_region: args.default_region.clone(),
        resync_period: args.resync_period,
        identity: identity.clone(),
        // Twice the lease: a writer that lost its lease has stopped by then.
        claim_timeout: args.lease_duration * 2,
        allow_cluster_scoped_refs: args.allow_cluster_scoped_refs,
        reference_kinds: args.reference_kinds(),
        require_role_selector: args.require_role_selector,
    };
    let ctx = Arc::new(Context::new(client.clone(), aws, events, settings, metrics.clone()));

    let admin_state = Arc::new(AdminState { registry, ready: AtomicBool::new(false) });
    let listener_state = admin_state.clone();
    let admin_addr = args.admin_addr;
    tokio::spawn(async move {
        if let Err(err) = admin::serve(admin_addr, listener_state).await {
            error!(%err, %admin_addr, "admin server failed");
            std::process::exit(1);
        }
    });

    let scope = WatchScope { namespaces: args.watch_namespace.clone(), label_selector: args.label_selector.clone() };
    if !wait_for_crd(&client, &scope, &shutdown).await {
        return Ok(());
    }

    let mut elector = None;
    if args.leader_elect {
        let config = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: identity.clone(),
            duration: args.lease_duration,
        };
        // A healthy standby reports ready, so rollouts and disruption budgets count it.
        admin_state.ready.store(true, Ordering::Relaxed);
        match acquire(Elector::new(client.clone(), config), &shutdown).await {
            Some(acquired) => elector = Some(acquired),
            None => return Ok(()),
        }
        admin_state.ready.store(false, Ordering::Relaxed);
    }
    metrics.set_leader(true);

    let ready_state = admin_state.clone();
    let (concurrency, stop) = (args.concurrency, shutdown.clone());
    let (default_region, resync, name) = (args.default_region.clone(), args.resync_period, identity.clone());
    // Run under the lease (it is renewed meanwhile): listing the selectors may take a while.
    let controllers = async move {
        // Every object's identity depends on the selectors: none is reconciled before they are
        // listed (a list that fails is tried again, however long that takes).
        let _selectors = tokio::select! {
            selectors = controller::selectors::start(ctx.clone()) => AbortOnDrop(selectors),
            _ = stop.clone().requested() => return,
        };
        info!(?scope, identity = %name, default_region = default_region.as_deref(), ?resync, "starting controller");
        controller::run(ctx, scope, concurrency, stop, move || {
            info!("watches synced");
            ready_state.ready.store(true, Ordering::Relaxed);
        })
        .await;
    };
    let drain_limit = args.shutdown_timeout;
    let drain_expired = async {
        shutdown.clone().requested().await;
        tokio::time::sleep(drain_limit).await;
    };
    match elector.as_mut() {
        None => tokio::select! {
            _ = controllers => info!("controller stopped"),
            _ = drain_expired => warn!(timeout = ?drain_limit, "in-flight reconciles did not finish in time; exiting"),
        },
        Some(elector) => {
            let lost = tokio::select! {
                _ = controllers => { info!("controller stopped"); false }
                _ = drain_expired => { warn!(timeout = ?drain_limit, "in-flight reconciles did not finish in time; exiting"); false }
                _ = elector.hold() => true,
            };
            if lost {
                // Stop writing at once: another replica may already hold the lease.
                metrics.set_leader(false);
                anyhow::bail!("lost the leader lease; exiting so that only one replica writes");
            }
            if let Err(err) = elector.release().await {
                warn!(%err, "could not release the lease; a standby takes over when it expires");
            }
        }
    }
    info!("exiting");
    Ok(())
}

/// Stops a background task when the run ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// This process's name in Leases, Events and create claims: the pod name, else the host name,
/// else a name of its own. Two processes must never share one by accident (a local run beside
/// the cluster's operator, say): a claim would look like each one's own and protect nothing.
fn identity(pod_name: Option<String>, host_name: Option<String>) -> String {
    pod_name.or(host_name).filter(|name| !name.is_empty()).unwrap_or_else(|| {
        let suffix: u32 = rand::random();
        format!("integration-response-operator-{suffix:08x}")
    })
}

/// Waits until this replica holds the lease; `None` if shutdown came first.
async fn acquire(mut elector: Elector, shutdown: &Shutdown) -> Option<Elector> {
    let retry = elector.config().retry_interval();
    info!(lease = %elector.config().name, namespace = %elector.config().namespace, identity = %elector.config().identity, "waiting to become leader");
    loop {
        match elector.try_acquire_or_renew().await {
            Ok(true) => {
                info!("acquired the lease; this replica is the leader");
                return Some(elector);
            }
            Ok(false) => {}
            Err(err) => warn!(%err, "could not read or write the lease"),
        }
        tokio::select! {
            _ = shutdown.clone().requested() => return None,
            _ = tokio::time::sleep(retry) => {}
        }
    }
}

/// Waits until IntegrationResponses can be listed, saying plainly when the CRD is missing.
/// Returns false if shutdown came first.
async fn wait_for_crd(client: &Client, scope: &WatchScope, shutdown: &Shutdown) -> bool {
    let api: Api<DeserializeGuard<IntegrationResponse>> = match scope.namespaces.first() {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let mut attempt = 0u32;
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return true,
            Err(kube::Error::Api(status)) if status.code == 404 => {
                if attempt % 15 == 0 {
                    error!(
                        "the IntegrationResponse CRD is not installed: run `kubectl apply -f crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml`; waiting for it"
                    );
                }
            }
            Err(err) => warn!(%err, "cannot list IntegrationResponses yet; retrying"),
        }
        attempt += 1;
        tokio::select! {
            _ = shutdown.clone().requested() => return false,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_pod_or_host_name_each_process_names_itself_apart() {
        assert_eq!(identity(Some("op-7f9".into()), Some("host".into())), "op-7f9");
        assert_eq!(identity(None, Some("host".into())), "host");
        let (a, b) = (identity(None, None), identity(None, None));
        assert!(a.starts_with("integration-response-operator-"), "{a}");
        assert_ne!(a, b, "two processes, two identities");
    }
}
