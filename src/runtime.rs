//! Wires the process together: Kubernetes and AWS clients, admin server, controller.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use prometheus_client::registry::Registry;
use tracing::{error, info};

use crate::admin::{self, AdminState};
use crate::aws::AwsClients;
use crate::cli::Args;
use crate::controller::{self, Context, Settings, WatchScope};
use crate::metrics::Metrics;
use crate::pacing::Pacer;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("no Kubernetes client: set KUBECONFIG or run in a cluster")?;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let pacer = Arc::new(Pacer::new(args.aws_rps, args.aws_burst));
    let aws = AwsClients::from_env(pacer, metrics.clone()).await;
    let reporter = Reporter {
        controller: "integration-response-operator".into(),
        instance: std::env::var("POD_NAME")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let settings = Settings {
        default_region: args.default_region.clone(),
        resync_period: args.resync_period,
    };
    let ctx = Arc::new(Context::new(client, aws, recorder, settings, metrics));

    let admin_state = Arc::new(AdminState {
        registry,
        ready: AtomicBool::new(false),
    });
    let listener_state = admin_state.clone();
    let admin_addr = args.admin_addr;
    tokio::spawn(async move {
        if let Err(err) = admin::serve(admin_addr, listener_state).await {
            error!(%err, %admin_addr, "admin server failed");
            std::process::exit(1);
        }
    });

    let scope = WatchScope {
        namespaces: args.watch_namespace.clone(),
        label_selector: args.label_selector.clone(),
    };
    info!(?scope, default_region = args.default_region.as_deref(), resync = ?args.resync_period, "starting controller");
    let ready_state = admin_state.clone();
    controller::run(ctx, scope, args.concurrency, move || {
        info!("watches synced");
        ready_state.ready.store(true, Ordering::Relaxed);
    })
    .await;
    info!("controller stopped; exiting");
    Ok(())
}
