#![forbid(unsafe_code)]
//! Kubernetes operator for AWS API Gateway V2 integration responses.
//!
//! `crd` defines the resource; `domain` holds the values the steps share (target, desired and
//! observed response, changes); `plan`, `conditions`, `failure`, `backoff` and `differences`
//! are pure decision code; `aws` and `pacing` talk to AWS; `controller` ties them into a
//! reconcile loop; `cli`, `telemetry`, `admin`, `metrics` and `runtime` run the process, and
//! `export` is the subcommand that turns existing responses into objects; `references` reads
//! ids and region from the ACK or Crossplane Integration that spec.integrationRef names; `snapshots` keeps
//! resyncs to one AWS read per integration; `recovery` wakes objects when AWS answers again
//! after an outage.

pub mod admin;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod differences;
pub mod domain;
pub mod export;
pub mod failure;
pub mod leader;
pub mod metrics;
pub mod pacing;
pub mod plan;
pub mod recovery;
pub mod references;
pub mod roles;
pub mod runtime;
pub mod shutdown;
pub mod snapshots;
pub mod telemetry;

use failure::Failure;
use kube::runtime::finalizer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Failure(#[from] Failure),
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The AWS-side failure behind this error, if it is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failure(failure) => Some(failure),
            Self::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(err) | finalizer::Error::CleanupFailed(err) => err.failure(),
                _ => None,
            },
            Self::Kube(_) => None,
        }
    }

    /// A stable, low-cardinality label for metrics.
    pub fn category(&self) -> &'static str {
        match self.failure() {
            Some(Failure::Stalled { .. }) => "stalled",
            // A reference not ready yet is a dependency that does not exist yet.
            Some(Failure::DependencyNotFound { .. } | Failure::ReferenceNotReady { .. }) => "dependency_not_found",
            Some(Failure::Transient { .. }) => "transient",
            None => "kube_error",
        }
    }
}
