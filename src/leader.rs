//! Leader election with a `coordination.k8s.io/v1` Lease, the way client-go does it: read the
//! lease, then create, renew or take it over with a write that is conditional on the
//! resourceVersion read, so two replicas can never both win.
//!
//! Expiry is judged on this replica's own clock, from the moment it last saw the lease record
//! change, so clock skew between nodes does not matter.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a holder that stops renewing keeps the lease.
    pub duration: Duration,
}

impl LeaseConfig {
    /// Renew this often: three chances before the lease could expire.
    pub fn renew_interval(&self) -> Duration {
        self.duration / 3
    }

    /// Standbys try this often to take over.
    pub fn retry_interval(&self) -> Duration {
        (self.duration / 4).max(Duration::from_millis(200))
    }
}

/// What to do with the lease as it stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Create,
    Renew,
    TakeOver,
    Wait,
}

/// `expired`: the record has not changed for longer than its duration, by our clock.
pub fn decide(current: Option<&LeaseSpec>, identity: &str, expired: bool) -> Decision {
    match current {
        None => Decision::Create,
        Some(spec) => {
            let holder = spec.holder_identity.as_deref().unwrap_or_default();
            if holder == identity {
                Decision::Renew
            } else if holder.is_empty() || expired {
                Decision::TakeOver
            } else {
                Decision::Wait
            }
        }
    }
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The record as last seen, and when it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self { api: Api::namespaced(client, &config.namespace), config, observed: None }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One round: returns whether this replica holds the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let lease = self.api.get_opt(&self.config.name).await?;
        let spec = lease.as_ref().and_then(|l| l.spec.clone());
        if self.observed.as_ref().map(|(seen, _)| seen) != spec.as_ref() {
            self.observed = spec.clone().map(|s| (s, Instant::now()));
        }
        let expired = match (&self.observed, spec.as_ref().and_then(|s| s.lease_duration_seconds)) {
            (Some((_, changed)), Some(seconds)) => changed.elapsed() > Duration::from_secs(seconds.max(0) as u64),
            _ => true,
        };
        let now = MicroTime(Timestamp::now());
        let duration_seconds = self.config.duration.as_secs().max(1) as i32;
        let decision = decide(spec.as_ref(), &self.config.identity, expired);
        let written = match (decision, lease) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(self.config.name.clone()), ..Default::default() },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds),
                        acquire_time: Some(now.clone()),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                if decision == Decision::TakeOver {
                    info!(previous = spec.holder_identity.as_deref(), "taking over the lease");
                    spec.holder_identity = Some(self.config.identity.clone());
                    spec.acquire_time = Some(now.clone());
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(duration_seconds);
                spec.renew_time = Some(now);
                // Carries the resourceVersion read above: a concurrent writer makes this a 409.
                self.api.replace(&self.config.name, &PostParams::default(), &lease).await
            }
            (_, None) => unreachable!("only Create is decided without a lease"),
        };
        match written {
            Ok(lease) => {
                self.observed = lease.spec.map(|s| (s, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up so a standby takes over at once instead of waiting for expiry.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api.replace(&self.config.name, &PostParams::default(), &lease).await?;
        info!("released the lease");
        Ok(())
    }

    /// Renews until renewal has failed for longer than two thirds of the lease duration, then
    /// returns: the caller must stop writing at once, as another replica may take over.
    ///
    /// Every renewal is bounded by that deadline, counted from when the last successful renewal
    /// was sent: a request stuck on a half-open connection or a slow connect must not keep this
    /// replica writing after a standby may have taken the lease (it waits a full duration from
    /// the last change it saw).
    pub async fn hold(&mut self) {
        let deadline = self.config.duration * 2 / 3;
        let mut last_renewed = Instant::now();
        let mut wait = self.config.renew_interval();
        loop {
            tokio::time::sleep(wait).await;
            let time_left = deadline.saturating_sub(last_renewed.elapsed());
            if time_left.is_zero() {
                return warn!("could not renew the lease in time");
            }
            let sent = Instant::now();
            match tokio::time::timeout(time_left, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {
                    last_renewed = sent;
                    wait = self.config.renew_interval();
                }
                Ok(Ok(false)) => return warn!("another replica holds the lease"),
                // One failed renewal is no reason to give up: try again soon, while time is left.
                Ok(Err(err)) => {
                    warn!(%err, "could not renew the lease");
                    wait = self.config.duration / 10;
                }
                Err(_) => return warn!(?time_left, "renewing the lease did not finish in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 15 s lease held as "a".
    fn config() -> LeaseConfig {
        LeaseConfig { name: "l".into(), namespace: "n".into(), identity: "a".into(), duration: Duration::from_secs(15) }
    }

    fn held_by(holder: &str) -> LeaseSpec {
        LeaseSpec { holder_identity: Some(holder.into()), lease_duration_seconds: Some(15), ..Default::default() }
    }

    #[test]
    fn decisions_follow_the_holder_and_expiry() {
        assert_eq!(decide(None, "a", false), Decision::Create);
        assert_eq!(decide(Some(&held_by("a")), "a", false), Decision::Renew);
        assert_eq!(decide(Some(&held_by("a")), "a", true), Decision::Renew);
        assert_eq!(decide(Some(&held_by("b")), "a", false), Decision::Wait);
        assert_eq!(decide(Some(&held_by("b")), "a", true), Decision::TakeOver);
        assert_eq!(decide(Some(&held_by("")), "a", false), Decision::TakeOver, "a released lease is free");
        assert_eq!(decide(Some(&LeaseSpec::default()), "a", false), Decision::TakeOver);
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_hangs_gives_the_lease_up_before_a_standby_could_take_it() {
        // An API server that never answers (a half-open connection).
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(request) = handle.next_request().await {
                pending.push(request);
            }
        });
        let config = config();
        let mut elector = Elector::new(kube::Client::new(service, "n"), config);
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(60), elector.hold()).await.expect("hold returned");
        let held = started.elapsed();
        assert!(held <= Duration::from_secs(10), "stopped within two thirds of the lease: {held:?}");
        assert!(held >= Duration::from_secs(5), "not before the first renewal was due: {held:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_failed_renewal_is_retried_before_the_lease_is_given_up() {
        use std::sync::{Arc, Mutex};
        // An API server holding one Lease, answering the second GET with a 500.
        let (service, mut handle) =
            tower_test::mock::pair::<http::Request<kube::client::Body>, http::Response<kube::client::Body>>();
        let requests = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut lease: Option<serde_json::Value> = None;
            let mut gets = 0;
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let body = request.into_body().collect_bytes().await.unwrap();
                seen.lock().unwrap().push(method.clone());
                let (status, reply) = match method.as_str() {
                    "GET" => {
                        gets += 1;
                        match (&lease, gets) {
                            (_, 3) => (500, serde_json::json!({"kind": "Status", "code": 500})),
                            (Some(l), _) => (200, l.clone()),
                            (None, _) => {
                                (404, serde_json::json!({"kind": "Status", "code": 404, "reason": "NotFound"}))
                            }
                        }
                    }
                    _ => {
                        let mut written: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        written["metadata"]["resourceVersion"] = serde_json::json!(gets.to_string());
                        lease = Some(written.clone());
                        (if method == "POST" { 201 } else { 200 }, written)
                    }
                };
                let response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        let config = config();
        let mut elector = Elector::new(kube::Client::new(service, "n"), config);
        assert!(elector.try_acquire_or_renew().await.unwrap(), "acquired");
        let held = tokio::time::timeout(Duration::from_secs(60), elector.hold()).await;
        assert!(held.is_err(), "still leading after one failed renewal: {:?}", requests.lock().unwrap());
    }

    #[test]
    fn intervals_leave_room_to_renew() {
        let config = config();
        assert_eq!(config.renew_interval(), Duration::from_secs(5));
        assert!(config.retry_interval() < config.duration);
    }
}
