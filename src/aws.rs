//! Thin, typed calls to API Gateway V2 for integration responses, with error classification
//! and pacing. Nothing here decides what to do; the controller does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::config::Region;
use aws_sdk_apigatewayv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_apigatewayv2::operation::RequestId;
use aws_sdk_apigatewayv2::types::ContentHandlingStrategy as AwsContentHandling;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use crate::crd::ContentHandlingStrategy;
use crate::domain::{Changes, Desired, Observed, Target};
use crate::metrics::{Metrics, OWN_ACCOUNT};
use crate::pacing::Pacer;
use crate::recovery::AwsHealth;
use crate::roles::{Identity, Role};

// Get, Create and Update outputs and the list item type share these getters but no trait.
macro_rules! observed_from {
    ($out:expr) => {{
        let out = $out;
        Observed {
            id: out.integration_response_id().unwrap_or_default().to_owned(),
            fields: Desired {
                key: out.integration_response_key().unwrap_or_default().to_owned(),
                content_handling: out.content_handling_strategy().and_then(content_handling_from_aws),
                template_selection_expression: out
                    .template_selection_expression()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                response_templates: sorted(out.response_templates()),
                response_parameters: sorted(out.response_parameters()),
            },
        }
    }};
}

fn sorted(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn content_handling_from_aws(value: &AwsContentHandling) -> Option<ContentHandlingStrategy> {
    match value {
        AwsContentHandling::ConvertToBinary => Some(ContentHandlingStrategy::ConvertToBinary),
        AwsContentHandling::ConvertToText => Some(ContentHandlingStrategy::ConvertToText),
        _ => None,
    }
}

fn content_handling_to_aws(value: ContentHandlingStrategy) -> AwsContentHandling {
    AwsContentHandling::from(value.as_str())
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// How a failed call should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    Throttled,
    BadRequest,
    AccessDenied,
    ServerError,
    /// Timeout, connection failure, unreadable response: the call may or may not have happened.
    Network,
}

impl ErrorKind {
    /// Stable label for metrics.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict | Self::BadRequest | Self::AccessDenied => "client_error",
            Self::Throttled => "throttled",
            Self::ServerError | Self::Network => "server_error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsError {
    pub kind: ErrorKind,
    pub operation: &'static str,
    /// AWS's own words, for the Stalled message a person reads.
    pub message: String,
    pub request_id: Option<String>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.operation, self.message)
    }
}

impl std::error::Error for AwsError {}

impl AwsError {
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// The request never left this process: no credentials could be had for it (STS refused
    /// the role, failed, throttled or did not answer). Whatever the kind, nothing was changed.
    pub fn never_sent(&self) -> bool {
        self.message.starts_with(CREDENTIALS_REFUSED)
            || (self.kind == ErrorKind::Network && self.message.contains("loading credentials"))
    }

    fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    {
        let (kind, message, request_id) = match &err {
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let inner = service.err();
                let kind = classify(inner.code(), status);
                let message = match (inner.code(), inner.message()) {
                    (Some(code), Some(msg)) => format!("{code}: {msg}"),
                    (Some(code), None) => code.to_owned(),
                    (None, Some(msg)) => msg.to_owned(),
                    (None, None) => format!("HTTP {status} with no error details"),
                };
                (kind, message, inner.request_id().map(str::to_owned))
            }
            SdkError::ConstructionFailure(_) => {
                (ErrorKind::BadRequest, format!("request could not be built: {}", source_text(&err)), None)
            }
            // An assumed role's credentials refused by STS arrive as a dispatch failure: it is
            // a permission problem, not AWS being unreachable (which would start outage probing).
            _ => {
                let text = source_text(&err);
                match aws_error_code(&text).filter(|_| text.contains("loading credentials")) {
                    Some(code) => (credentials_failure(&code), format!("{CREDENTIALS_REFUSED}{code}"), None),
                    None => (ErrorKind::Network, text, None),
                }
            }
        };
        Self { kind, operation, message, request_id }
    }
}

/// What STS's answer (`Code: message`) to a request for credentials means: throttling and its
/// own failures pass (retrying helps); anything else refuses the role.
fn credentials_failure(answer: &str) -> ErrorKind {
    match answer.split(':').next().unwrap_or_default() {
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            ErrorKind::Throttled
        }
        "InternalFailure" | "InternalError" | "ServiceUnavailable" | "IDPCommunicationError" => ErrorKind::ServerError,
        _ => ErrorKind::AccessDenied,
    }
}

/// How an AwsError's message starts when STS refused the credentials (an assumed role).
pub const CREDENTIALS_REFUSED: &str = "could not obtain credentials: ";

/// `Code: message` of the AWS error inside an SDK error's full text (the credentials provider's
/// failure arrives wrapped in a dispatch failure), without the volatile rest.
pub fn aws_error_code(text: &str) -> Option<String> {
    let quoted = |key: &str| {
        let start = text.find(key)? + key.len();
        let end = text[start..].find('"')?;
        Some(text[start..start + end].to_owned())
    };
    let code = quoted("code: Some(\"").or_else(|| quoted("code: \""))?;
    match quoted("message: Some(\"").or_else(|| quoted("message: \"")) {
        Some(message) => Some(format!("{code}: {message}")),
        None => Some(code),
    }
}

fn source_text(err: &dyn std::error::Error) -> String {
    aws_sdk_apigatewayv2::error::DisplayErrorContext(err).to_string()
}

/// Error code first (AWS's modelled exceptions), HTTP status second (unmodelled responses such
/// as moto's HTML 500s or a proxy's 503).
fn classify(code: Option<&str>, status: u16) -> ErrorKind {
    match code {
        Some("NotFoundException") => return ErrorKind::NotFound,
        Some("ConflictException") => return ErrorKind::Conflict,
        Some("TooManyRequestsException" | "ThrottlingException" | "LimitExceededException") => {
            return ErrorKind::Throttled;
        }
        Some("BadRequestException" | "ValidationException") => return ErrorKind::BadRequest,
        Some(
            "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "ExpiredTokenException"
            | "MissingAuthenticationTokenException",
        ) => return ErrorKind::AccessDenied,
        _ => {}
    }
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::AccessDenied,
        500.. => ErrorKind::ServerError,
        _ => ErrorKind::BadRequest,
    }
}

/// One API Gateway client per identity and region, made on first use; one pacer per account and
/// region (API Gateway's quota is per account and region, so one busy tenant does not slow the
/// others); one set of per-API mutation locks.
pub struct AwsClients {
    source: ClientSource,
    by_region: RwLock<HashMap<(Option<Role>, String), Client>>,
    /// Assumed-role credentials, one provider per role (it caches and refreshes them).
    roles: tokio::sync::Mutex<HashMap<Role, SharedCredentialsProvider>>,
    /// The configured rate, copied for each account and region.
    pacer: Arc<Pacer>,
    pacers: std::sync::Mutex<HashMap<(String, String), Arc<Pacer>>>,
    metrics: Arc<Metrics>,
    mutations: Arc<MutationLocks>,
    health: Arc<AwsHealth>,
}

type ApiLock = tokio::sync::Mutex<()>;

/// API Gateway applies changes to one API one at a time and answers a change that overlaps
/// another with ConflictException ("concurrent modification"). So this process sends at most one
/// create, update or delete per API at a time; reads and other APIs go on in parallel.
#[derive(Default)]
pub struct MutationLocks {
    /// Weak, so an API nobody is changing costs one map entry until the next sweep.
    by_api: std::sync::Mutex<HashMap<(String, String), Weak<ApiLock>>>,
}

impl MutationLocks {
    /// Waits until no other mutation of this API is in flight in this process.
    pub async fn lock(&self, region: &str, api_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut by_api = self.by_api.lock().expect("mutation locks");
            let key = (region.to_owned(), api_id.to_owned());
            match by_api.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    // Sweep entries of finished mutations now and then, keeping the map small.
                    if by_api.len() >= 64 {
                        by_api.retain(|_, lock| lock.strong_count() > 0);
                    }
                    let lock = Arc::new(ApiLock::new(()));
                    by_api.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// APIs with a lock entry (for tests of the sweep).
    pub fn len(&self) -> usize {
        self.by_api.lock().expect("mutation locks").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum ClientSource {
    Config(Box<aws_config::SdkConfig>),
    /// Tests hand in one prepared client for every region.
    Fixed(Client),
}

impl AwsClients {
    /// Loads credentials, endpoints and settings from the standard AWS chain. The SDK's own
    /// retries are off: every attempt must pass the pacer, and the controller's per-object
    /// backoff decides when to try again.
    pub async fn from_env(pacer: Arc<Pacer>, metrics: Arc<Metrics>) -> Self {
        Self::from_loader(aws_config::defaults(BehaviorVersion::latest()), pacer, metrics).await
    }

    /// As [`Self::from_env`], from a loader the caller has adjusted (tests set an endpoint).
    pub async fn from_loader(loader: aws_config::ConfigLoader, pacer: Arc<Pacer>, metrics: Arc<Metrics>) -> Self {
        let config = loader
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(20))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .load()
            .await;
        Self::new(ClientSource::Config(Box::new(config)), pacer, metrics)
    }

    pub fn fixed(client: Client, pacer: Arc<Pacer>, metrics: Arc<Metrics>) -> Self {
        Self::new(ClientSource::Fixed(client), pacer, metrics)
    }

    fn new(source: ClientSource, pacer: Arc<Pacer>, metrics: Arc<Metrics>) -> Self {
        Self {
            source,
            by_region: RwLock::default(),
            roles: tokio::sync::Mutex::default(),
            pacer,
            pacers: std::sync::Mutex::default(),
            metrics,
            mutations: Arc::default(),
            health: Arc::default(),
        }
    }

    /// The pacer of one account (`self` for the operator's own) in one region.
    fn pacer_for(&self, account: &str, region: &str) -> Arc<Pacer> {
        let mut pacers = self.pacers.lock().expect("pacers lock");
        pacers.entry((account.to_owned(), region.to_owned())).or_insert_with(|| Arc::new(self.pacer.like())).clone()
    }

    /// How AWS has been answering, across every region and call.
    pub fn health(&self) -> &Arc<AwsHealth> {
        &self.health
    }

    /// Calls on `target`'s integration, with its identity.
    pub async fn for_target(&self, target: &Target) -> IntegrationResponses {
        self.for_identity(&target.region, &target.identity).await
    }

    /// Calls in `region` with the operator's own identity.
    pub fn for_region(&self, region: &str) -> IntegrationResponses {
        self.handle(region, None, self.client(region, None, None))
    }

    /// Calls in `region` with `identity` (an assumed role's credentials, made on first use).
    pub async fn for_identity(&self, region: &str, identity: &Identity) -> IntegrationResponses {
        match identity {
            Identity::Own => self.for_region(region),
            Identity::Role(role) => {
                let credentials = self.role_credentials(role).await;
                self.handle(region, Some(role), self.client(region, Some(role), credentials))
            }
        }
    }

    fn handle(&self, region: &str, role: Option<&Role>, client: Client) -> IntegrationResponses {
        let account = role.map_or(OWN_ACCOUNT, |r| r.account_id.as_str()).to_owned();
        self.metrics.note_account(&account);
        IntegrationResponses {
            client,
            region: region.to_owned(),
            pacer: self.pacer_for(&account, region),
            account,
            metrics: self.metrics.clone(),
            mutations: self.mutations.clone(),
            health: self.health.clone(),
        }
    }

    /// STS AssumeRole credentials for `role`, cached and refreshed before they expire by the
    /// SDK's identity cache. Never logged.
    async fn role_credentials(&self, role: &Role) -> Option<SharedCredentialsProvider> {
        let ClientSource::Config(config) = &self.source else { return None };
        let mut roles = self.roles.lock().await;
        if let Some(provider) = roles.get(role) {
            return Some(provider.clone());
        }
        let mut builder = aws_config::sts::AssumeRoleProvider::builder(&role.arn).session_name(&role.session_name);
        if let Some(external_id) = &role.external_id {
            builder = builder.external_id(external_id);
        }
        // STS needs a region; without one in the AWS chain (--default-region given as a flag
        // only), its global endpoint's region serves.
        let sts_region = config.region().cloned().unwrap_or_else(|| Region::new("us-east-1"));
        let provider = SharedCredentialsProvider::new(builder.configure(config).region(sts_region).build().await);
        roles.insert(role.clone(), provider.clone());
        Some(provider)
    }

    /// The account `role`'s credentials act in, from sts:GetCallerIdentity made with them.
    pub async fn caller_account(&self, region: &str, role: &Role) -> Result<String, AwsError> {
        let Some(credentials) = self.role_credentials(role).await else {
            // A fixed client (tests) has no STS: the role's own account stands in.
            return Ok(role.account_id.clone());
        };
        let ClientSource::Config(config) = &self.source else { unreachable!("credentials come from a config") };
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::config::Builder::from(config.as_ref())
                .region(Region::new(region.to_owned()))
                .credentials_provider(credentials)
                .build(),
        );
        let answer =
            sts.get_caller_identity().send().await.map_err(|err| AwsError::from_sdk("GetCallerIdentity", err))?;
        Ok(answer.account().unwrap_or_default().to_owned())
    }

    fn client(&self, region: &str, role: Option<&Role>, credentials: Option<SharedCredentialsProvider>) -> Client {
        let config = match &self.source {
            ClientSource::Fixed(client) => return client.clone(),
            ClientSource::Config(config) => config,
        };
        let key = (role.cloned(), region.to_owned());
        if let Some(client) = self.by_region.read().expect("client map lock").get(&key) {
            return client.clone();
        }
        let mut builder =
            aws_sdk_apigatewayv2::config::Builder::from(config.as_ref()).region(Region::new(region.to_owned()));
        if let Some(credentials) = credentials {
            builder = builder.credentials_provider(credentials);
        }
        let client = Client::from_conf(builder.build());
        self.by_region.write().expect("client map lock").entry(key).or_insert(client).clone()
    }
}

/// Integration-response calls in one region, with one identity.
pub struct IntegrationResponses {
    client: Client,
    region: String,
    /// The `account` metric label.
    account: String,
    pacer: Arc<Pacer>,
    metrics: Arc<Metrics>,
    mutations: Arc<MutationLocks>,
    health: Arc<AwsHealth>,
}

/// What a delete found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// The response existed and is gone now.
    Deleted,
    /// There was nothing to delete: the response, its integration or its API was already gone.
    AlreadyGone,
}

impl IntegrationResponses {
    /// Waits for the pacer, then records the call's outcome.
    /// `target` names the integration a call concerns, for outage probing; calls about a whole
    /// API (export's) have none.
    async fn call<T, E, F>(&self, operation: &'static str, target: Option<&Target>, send: F) -> Result<T, AwsError>
    where
        F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + RequestId + std::error::Error + 'static,
    {
        let waited = self.pacer.acquire().await;
        self.metrics.observe_pacer_wait(waited, &self.account);
        let result = send.await.map_err(|err| AwsError::from_sdk(operation, err));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => err.kind.outcome(),
        };
        self.metrics.count_aws_call(operation, outcome, &self.account);
        match &result {
            // A role STS refuses: API Gateway was not called, so this says nothing about whether
            // it answers (and must not wake the objects waiting for it).
            Err(err) if err.kind == ErrorKind::AccessDenied && err.message.starts_with(CREDENTIALS_REFUSED) => {}
            Err(AwsError { kind: ErrorKind::Throttled | ErrorKind::ServerError | ErrorKind::Network, .. }) => {
                if let Some(target) = target {
                    self.health.failed(&self.region, target)
                }
            }
            _ => self.health.answered(),
        }
        match &result {
            // NotFound is often the answer sought (a delete read back, a missing parent).
            Err(err) if err.is_not_found() => {
                tracing::debug!(operation, request_id = err.request_id.as_deref(), "AWS answered NotFound")
            }
            Err(err) => tracing::warn!(
                operation,
                kind = ?err.kind,
                request_id = err.request_id.as_deref(),
                message = %err.message,
                "AWS call failed"
            ),
            Ok(_) => {}
        }
        result
    }

    pub async fn get(&self, target: &Target, id: &str) -> Result<Observed, AwsError> {
        let request = self
            .client
            .get_integration_response()
            .api_id(&target.api_id)
            .integration_id(&target.integration_id)
            .integration_response_id(id);
        let out = self.call("GetIntegrationResponse", Some(target), request.send()).await?;
        Ok(observed_from!(&out))
    }

    /// All responses of the integration, following NextToken through every page.
    pub async fn list(&self, target: &Target) -> Result<Vec<Observed>, AwsError> {
        let mut all = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = self
                .client
                .get_integration_responses()
                .api_id(&target.api_id)
                .integration_id(&target.integration_id)
                .set_next_token(next_token.take());
            let page = self.call("GetIntegrationResponses", Some(target), request.send()).await?;
            all.extend(page.items().iter().map(|item| observed_from!(item)));
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    /// The API's protocol type (`WEBSOCKET` or `HTTP`).
    pub async fn api_protocol(&self, api_id: &str) -> Result<String, AwsError> {
        let request = self.client.get_api().api_id(api_id);
        let out = self.call("GetApi", None, request.send()).await?;
        Ok(out.protocol_type().map(|p| p.as_str().to_owned()).unwrap_or_default())
    }

    /// Every integration of the API as (id, integration type), following NextToken.
    pub async fn integrations(&self, api_id: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut all = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let request = self.client.get_integrations().api_id(api_id).set_next_token(next_token.take());
            let page = self.call("GetIntegrations", None, request.send()).await?;
            all.extend(page.items().iter().map(|item| {
                let kind = item.integration_type().map(|t| t.as_str().to_owned()).unwrap_or_default();
                (item.integration_id().unwrap_or_default().to_owned(), kind)
            }));
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(all),
            }
        }
    }

    /// One small read that tells whether AWS answers again (see [`crate::recovery`]).
    pub async fn probe(&self, target: &Target) -> Result<(), AwsError> {
        let request = self
            .client
            .get_integration_responses()
            .api_id(&target.api_id)
            .integration_id(&target.integration_id)
            .max_results("1");
        self.call("GetIntegrationResponses", Some(target), request.send()).await.map(|_| ())
    }

    pub async fn create(&self, target: &Target, desired: &Desired) -> Result<Observed, AwsError> {
        let request = self
            .client
            .create_integration_response()
            .api_id(&target.api_id)
            .integration_id(&target.integration_id)
            .integration_response_key(&desired.key)
            .set_content_handling_strategy(desired.content_handling.map(content_handling_to_aws))
            .set_template_selection_expression(desired.template_selection_expression.clone())
            .set_response_templates(
                (!desired.response_templates.is_empty()).then(|| to_hash_map(&desired.response_templates)),
            )
            .set_response_parameters(
                (!desired.response_parameters.is_empty()).then(|| to_hash_map(&desired.response_parameters)),
            );
        let _serial = self.mutations.lock(&self.region, &target.api_id).await;
        let out = self.call("CreateIntegrationResponse", Some(target), request.send()).await?;
        Ok(observed_from!(&out))
    }

    /// Sends only the fields in `changes`. An empty map or string clears that field.
    pub async fn update(&self, target: &Target, id: &str, changes: &Changes) -> Result<Observed, AwsError> {
        let request = self
            .client
            .update_integration_response()
            .api_id(&target.api_id)
            .integration_id(&target.integration_id)
            .integration_response_id(id)
            .set_integration_response_key(changes.key.clone())
            .set_content_handling_strategy(changes.content_handling.map(content_handling_to_aws))
            .set_template_selection_expression(changes.template_selection_expression.clone())
            .set_response_templates(changes.response_templates.as_ref().map(to_hash_map))
            .set_response_parameters(changes.response_parameters.as_ref().map(to_hash_map));
        let _serial = self.mutations.lock(&self.region, &target.api_id).await;
        let out = self.call("UpdateIntegrationResponse", Some(target), request.send()).await?;
        Ok(observed_from!(&out))
    }

    /// Deletes the response. NotFound, of the response or of its integration or API, means it
    /// is gone. Any other failure is checked by reading the response back: moto answers a delete
    /// of a missing response with an untyped HTTP 500, where AWS answers 404.
    pub async fn delete(&self, target: &Target, id: &str) -> Result<Deleted, AwsError> {
        let request = self
            .client
            .delete_integration_response()
            .api_id(&target.api_id)
            .integration_id(&target.integration_id)
            .integration_response_id(id);
        let sent = {
            let _serial = self.mutations.lock(&self.region, &target.api_id).await;
            self.call("DeleteIntegrationResponse", Some(target), request.send()).await
        };
        match sent {
            Ok(_) => Ok(Deleted::Deleted),
            Err(err) if err.is_not_found() => Ok(Deleted::AlreadyGone),
            Err(err @ AwsError { kind: ErrorKind::ServerError, .. }) => match self.get(target, id).await {
                Err(check) if check.is_not_found() => Ok(Deleted::AlreadyGone),
                _ => Err(err),
            },
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_win_over_status_and_unmodelled_responses_fall_back_to_status() {
        assert_eq!(classify(Some("NotFoundException"), 404), ErrorKind::NotFound);
        assert_eq!(classify(Some("ConflictException"), 409), ErrorKind::Conflict);
        assert_eq!(classify(Some("TooManyRequestsException"), 429), ErrorKind::Throttled);
        assert_eq!(classify(Some("BadRequestException"), 400), ErrorKind::BadRequest);
        assert_eq!(classify(Some("AccessDeniedException"), 403), ErrorKind::AccessDenied);
        assert_eq!(classify(Some("ExpiredTokenException"), 400), ErrorKind::AccessDenied);
        assert_eq!(classify(None, 500), ErrorKind::ServerError);
        assert_eq!(classify(None, 503), ErrorKind::ServerError);
        assert_eq!(classify(None, 429), ErrorKind::Throttled);
        assert_eq!(classify(None, 404), ErrorKind::NotFound);
        assert_eq!(classify(None, 403), ErrorKind::AccessDenied);
        assert_eq!(classify(Some("SomethingNew"), 400), ErrorKind::BadRequest);
    }

    #[tokio::test(start_paused = true)]
    async fn mutations_of_one_api_take_turns_and_other_apis_go_on() {
        let locks = Arc::new(MutationLocks::default());
        let first = locks.lock("us-east-1", "api1").await;
        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.lock("us-east-1", "api1").await })
        };
        // Another API, and the same API id in another region, are not held up.
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock("us-east-1", "api2")).await;
        assert!(other.is_ok(), "another API waits for nothing");
        let other_region = tokio::time::timeout(Duration::from_secs(1), locks.lock("eu-west-1", "api1")).await;
        assert!(other_region.is_ok(), "the same id in another region is another API");
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "a second mutation of api1 waits for the first");
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("released").unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn one_accounts_throttling_does_not_delay_another_accounts_calls() {
        let client = Client::from_conf(
            aws_sdk_apigatewayv2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .build(),
        );
        let clients = AwsClients::fixed(client, Arc::new(Pacer::new(1.0, 1)), Arc::new(Metrics::default()));
        let busy = clients.pacer_for("111111111111", "us-east-1");
        // Account 111111111111 spends its token and queues five more calls: 5 s of waiting.
        assert_eq!(busy.acquire().await, Duration::ZERO);
        let queued: Vec<_> = (0..5)
            .map(|_| {
                tokio::spawn({
                    let busy = busy.clone();
                    async move { busy.acquire().await }
                })
            })
            .collect();
        tokio::task::yield_now().await;
        // Another account, and the same account in another region, go at once.
        let started = tokio::time::Instant::now();
        assert_eq!(clients.pacer_for("222222222222", "us-east-1").acquire().await, Duration::ZERO);
        assert_eq!(clients.pacer_for("111111111111", "eu-west-1").acquire().await, Duration::ZERO);
        assert_eq!(clients.pacer_for(OWN_ACCOUNT, "us-east-1").acquire().await, Duration::ZERO);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let mut waits = Vec::new();
        for call in queued {
            waits.push(call.await.unwrap());
        }
        waits.sort();
        assert_eq!(waits.last().copied(), Some(Duration::from_secs(5)), "the busy account waits for its own tokens");
        assert!(
            Arc::ptr_eq(&busy, &clients.pacer_for("111111111111", "us-east-1")),
            "one pacer per account and region"
        );
    }

    /// Credentials that STS refuses with `code`, as an AssumeRoleProvider reports it.
    #[derive(Debug)]
    struct StsAnswers(&'static str);

    impl aws_credential_types::provider::ProvideCredentials for StsAnswers {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            use aws_sdk_sts::operation::assume_role::AssumeRoleError;
            let metadata = aws_smithy_types::error::ErrorMetadata::builder().code(self.0).message("from STS").build();
            let response = HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::empty(),
            );
            let refused = SdkError::service_error(AssumeRoleError::generic(metadata), response);
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::provider_error(refused),
            ))
        }
    }

    async fn with_credentials_from_sts(code: &'static str) -> AwsError {
        let client = Client::from_conf(
            aws_sdk_apigatewayv2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(StsAnswers(code))
                .build(),
        );
        let err = client.get_api().api_id("a").send().await.expect_err("no credentials");
        AwsError::from_sdk("GetApi", err)
    }

    #[tokio::test]
    async fn sts_refusing_a_role_is_access_denied_but_sts_throttling_or_failing_is_transient() {
        let refused = with_credentials_from_sts("AccessDenied").await;
        assert_eq!(refused.kind, ErrorKind::AccessDenied);
        assert_eq!(refused.message, format!("{CREDENTIALS_REFUSED}AccessDenied: from STS"));
        for (code, kind) in [
            ("Throttling", ErrorKind::Throttled),
            ("InternalFailure", ErrorKind::ServerError),
            ("ServiceUnavailable", ErrorKind::ServerError),
        ] {
            let err = with_credentials_from_sts(code).await;
            assert_eq!(err.kind, kind, "STS answered {code}: retrying helps, the role is not refused");
            assert!(err.message.starts_with(CREDENTIALS_REFUSED), "{}", err.message);
            assert!(err.never_sent(), "a create that failed so made nothing: its claim can go");
        }
        let lost = AwsError {
            kind: ErrorKind::ServerError,
            operation: "CreateIntegrationResponse",
            message: "HTTP 500 with no error details".into(),
            request_id: None,
        };
        assert!(!lost.never_sent(), "a 500 from API Gateway: the create may have happened");
    }

    #[tokio::test]
    async fn a_role_sts_refuses_says_nothing_about_whether_api_gateway_answers() {
        let client = Client::from_conf(
            aws_sdk_apigatewayv2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(StsAnswers("AccessDenied"))
                .build(),
        );
        let clients = AwsClients::fixed(client, Arc::new(Pacer::unlimited()), Arc::new(Metrics::default()));
        let target = Target {
            region: "us-east-1".into(),
            api_id: "a".into(),
            integration_id: "i".into(),
            identity: Identity::Own,
        };
        // API Gateway stopped answering: objects wait to be woken when it answers again.
        for _ in 0..3 {
            clients.health().failed("us-east-1", &target);
        }
        let recovered = clients.health().subscribe();
        let refused = clients.for_region("us-east-1").get(&target, "r").await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::AccessDenied);
        assert!(clients.health().is_down(), "API Gateway was not even called");
        assert!(!recovered.has_changed().unwrap(), "no object is woken as if AWS answered again");
    }

    #[tokio::test]
    async fn finished_apis_are_swept_from_the_lock_map() {
        let locks = MutationLocks::default();
        for i in 0..500 {
            drop(locks.lock("us-east-1", &format!("api{i}")).await);
        }
        assert!(locks.len() <= 64, "the map keeps only a bounded number of idle entries: {}", locks.len());
    }

    #[test]
    fn metric_outcomes_are_a_small_fixed_set() {
        use ErrorKind::*;
        let outcomes: std::collections::BTreeSet<_> =
            [NotFound, Conflict, Throttled, BadRequest, AccessDenied, ServerError, Network]
                .into_iter()
                .map(ErrorKind::outcome)
                .collect();
        assert_eq!(
            outcomes.into_iter().collect::<Vec<_>>(),
            ["client_error", "not_found", "server_error", "throttled"]
        );
    }
}
