//! A stateful fake of API Gateway V2's integration-response calls, built from aws-smithy-mocks
//! rules. Errors are answered as HTTP responses in API Gateway's restJson1 shape (status,
//! `x-amzn-ErrorType` header, JSON body), so the SDK's real error parsing runs.

#![allow(clippy::result_large_err)] // test-only: the Err is the HTTP answer itself

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::operation::create_integration_response::CreateIntegrationResponseOutput;
use aws_sdk_apigatewayv2::operation::delete_integration_response::DeleteIntegrationResponseOutput;
use aws_sdk_apigatewayv2::operation::get_api::GetApiOutput;
use aws_sdk_apigatewayv2::operation::get_integration_response::GetIntegrationResponseOutput;
use aws_sdk_apigatewayv2::operation::get_integration_responses::GetIntegrationResponsesOutput;
use aws_sdk_apigatewayv2::operation::get_integrations::GetIntegrationsOutput;
use aws_sdk_apigatewayv2::operation::update_integration_response::UpdateIntegrationResponseOutput;
use aws_sdk_apigatewayv2::types::{
    ContentHandlingStrategy, Integration, IntegrationResponse, IntegrationType, ProtocolType,
};
use aws_smithy_mocks::{MockResponse, RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use tokio::time::Instant;

/// One stored integration response.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stored {
    pub api_id: String,
    pub integration_id: String,
    pub id: String,
    pub key: String,
    pub content_handling: Option<String>,
    pub template_selection_expression: Option<String>,
    pub response_templates: BTreeMap<String, String>,
    pub response_parameters: BTreeMap<String, String>,
}

type Interleaved = Box<dyn FnOnce(&mut State) + Send>;

#[derive(Default)]
pub struct State {
    pub integrations: BTreeSet<(String, String)>,
    /// APIs that answer GetApi as HTTP APIs (the rest are WebSocket APIs).
    pub http_apis: BTreeSet<String>,
    pub responses: BTreeMap<String, Stored>,
    next_id: u32,
    /// Scripted failures, answered before the fake's own logic, per operation name.
    failures: HashMap<&'static str, VecDeque<HttpResponse>>,
    /// Changes made just before the next call of an operation is answered (another writer
    /// acting between two of the operator's calls).
    interleaved: HashMap<&'static str, VecDeque<Interleaved>>,
    /// Every call as "Operation" plus, for updates, the fields that were sent.
    pub calls: Vec<String>,
    /// GetIntegrationResponses page size, to exercise NextToken.
    pub page_size: usize,
    /// How long a create, update or delete takes to answer. While one is in flight, another
    /// mutation of the same API is refused with ConflictException, as API Gateway does.
    pub mutation_latency: Duration,
    busy_until: HashMap<String, Instant>,
    /// Update merges maps into the stored ones instead of replacing them (keys left out of the
    /// request stay), to show the operator does not trust an update blindly.
    pub merge_maps_on_update: bool,
    /// moto's behaviour: a second response with an existing key is accepted.
    pub lenient_keys: bool,
    /// Seeded random faults, for the simulation.
    pub chaos: Option<Chaos>,
    /// Awaited after a call took effect and before its answer is delivered (who, operation):
    /// the simulation's scheduler decides when each answer arrives, or drops it with its caller.
    pub gate: Option<Gate>,
}

pub type Gate = Arc<dyn Fn(String, String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Random faults drawn from a seeded generator, so a history replays exactly.
pub struct Chaos {
    pub rng: rand::rngs::StdRng,
    /// Any call answered 429 before it takes effect.
    pub throttle: f64,
    /// Any call answered 500 before it takes effect.
    pub server_error: f64,
    /// A create, update or delete takes effect, but the caller sees a 500 (a lost reply).
    pub lost_reply: f64,
}

#[derive(Clone)]
pub struct FakeAws {
    pub state: Arc<Mutex<State>>,
}

pub fn error_response(status: u16, error_type: &str, message: &str) -> HttpResponse {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
    response.headers_mut().insert("Content-Type", "application/json");
    if !error_type.is_empty() {
        response.headers_mut().insert("x-amzn-ErrorType", error_type.to_owned());
    }
    response
}

/// moto's answer to an update or delete of a missing response: HTML, no error type.
pub fn moto_html_500() -> HttpResponse {
    let mut response = HttpResponse::new(
        StatusCode::try_from(500).unwrap(),
        SdkBody::from("<!doctype html><title>500 Internal Server Error</title>"),
    );
    response.headers_mut().insert("Content-Type", "text/html");
    response
}

fn not_found(what: &str) -> HttpResponse {
    error_response(404, "NotFoundException", &format!("Invalid {what} identifier specified"))
}

impl FakeAws {
    pub fn new() -> Self {
        let state = State { page_size: 2, ..Default::default() };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    pub fn with_integration(self, api_id: &str, integration_id: &str) -> Self {
        self.state.lock().unwrap().integrations.insert((api_id.into(), integration_id.into()));
        self
    }

    /// Fails the next call of `operation` with `response`.
    pub fn fail_next(&self, operation: &'static str, response: HttpResponse) {
        self.state.lock().unwrap().failures.entry(operation).or_default().push_back(response);
    }

    /// Runs `change` on the fake's state just before the next `operation` is answered.
    pub fn before_next(&self, operation: &'static str, change: impl FnOnce(&mut State) + Send + 'static) {
        self.state.lock().unwrap().interleaved.entry(operation).or_default().push_back(Box::new(change));
    }

    pub fn set(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.state.lock().unwrap());
    }

    pub fn responses(&self) -> Vec<Stored> {
        self.state.lock().unwrap().responses.values().cloned().collect()
    }

    pub fn only_response(&self) -> Stored {
        let all = self.responses();
        assert_eq!(all.len(), 1, "expected exactly one integration response, found {all:#?}");
        all.into_iter().next().unwrap()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.state.lock().unwrap().calls.clear();
    }

    /// Changes a stored response behind the operator's back.
    pub fn tamper(&self, id: &str, change: impl FnOnce(&mut Stored)) {
        change(self.state.lock().unwrap().responses.get_mut(id).expect("stored response"));
    }

    /// Stores a response as another tool would have created it.
    pub fn insert_foreign(&self, api_id: &str, integration_id: &str, key: &str) -> String {
        self.state.lock().unwrap().insert(api_id, integration_id, key)
    }

    pub fn client(&self) -> Client {
        self.client_as("")
    }

    /// A client whose calls are named `who` at the simulation's gate.
    pub fn client_as(&self, who: &str) -> Client {
        let s = self.state.clone();
        let get = mock!(Client::get_integration_response).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("GetIntegrationResponse").unwrap_or_else(|| {
                let (api, int, id) = (
                    input.api_id().unwrap(),
                    input.integration_id().unwrap(),
                    input.integration_response_id().unwrap(),
                );
                match state.find(api, int, id) {
                    Err(response) => MockResponse::Http(response),
                    Ok(stored) => MockResponse::Output(
                        GetIntegrationResponseOutput::builder()
                            .integration_response_id(&stored.id)
                            .integration_response_key(&stored.key)
                            .set_content_handling_strategy(
                                stored.content_handling.as_deref().map(ContentHandlingStrategy::from),
                            )
                            .set_template_selection_expression(stored.template_selection_expression.clone())
                            .set_response_templates(non_empty(&stored.response_templates))
                            .set_response_parameters(non_empty(&stored.response_parameters))
                            .build(),
                    ),
                }
            })
        });
        let s = self.state.clone();
        let list = mock!(Client::get_integration_responses).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("GetIntegrationResponses").unwrap_or_else(|| {
                let (api, int) = (input.api_id().unwrap(), input.integration_id().unwrap());
                if let Err(response) = state.parent(api, int) {
                    return MockResponse::Http(response);
                }
                let all: Vec<_> =
                    state.responses.values().filter(|r| r.api_id == api && r.integration_id == int).cloned().collect();
                // A page past the end (responses went between two pages) is empty, as on AWS.
                let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap()).min(all.len());
                let end = (start + state.page_size).min(all.len());
                let items = all[start..end].iter().map(|stored| {
                    IntegrationResponse::builder()
                        .integration_response_id(&stored.id)
                        .integration_response_key(&stored.key)
                        .set_content_handling_strategy(
                            stored.content_handling.as_deref().map(ContentHandlingStrategy::from),
                        )
                        .set_template_selection_expression(stored.template_selection_expression.clone())
                        .set_response_templates(non_empty(&stored.response_templates))
                        .set_response_parameters(non_empty(&stored.response_parameters))
                        .build()
                });
                let mut output = GetIntegrationResponsesOutput::builder().set_items(Some(items.collect()));
                if end < all.len() {
                    output = output.next_token(end.to_string());
                }
                MockResponse::Output(output.build())
            })
        });
        let s = self.state.clone();
        let create = mock!(Client::create_integration_response).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("CreateIntegrationResponse").unwrap_or_else(|| {
                let (api, int, key) = (
                    input.api_id().unwrap(),
                    input.integration_id().unwrap(),
                    input.integration_response_key().unwrap(),
                );
                if let Err(response) = state.parent(api, int) {
                    return MockResponse::Http(response);
                }
                if let Err(response) = state.mutate(api) {
                    return MockResponse::Http(response);
                }
                if !state.lenient_keys
                    && state.responses.values().any(|r| r.api_id == api && r.integration_id == int && r.key == key)
                {
                    return MockResponse::Http(error_response(
                        409,
                        "ConflictException",
                        "Integration response already exists for key",
                    ));
                }
                let id = state.new_id();
                let stored = Stored {
                    api_id: api.into(),
                    integration_id: int.into(),
                    id: id.clone(),
                    key: key.into(),
                    content_handling: input.content_handling_strategy().map(|c| c.as_str().to_owned()),
                    template_selection_expression: input.template_selection_expression().map(str::to_owned),
                    response_templates: sorted(input.response_templates()),
                    response_parameters: sorted(input.response_parameters()),
                };
                state.responses.insert(id.clone(), stored.clone());
                if state.chaos_lost_reply() {
                    return MockResponse::Http(error_response(500, "InternalServerErrorException", "reply lost"));
                }
                // AWS answers with the whole response, as created.
                MockResponse::Output(
                    CreateIntegrationResponseOutput::builder()
                        .integration_response_id(id)
                        .integration_response_key(&stored.key)
                        .set_content_handling_strategy(
                            stored.content_handling.as_deref().map(ContentHandlingStrategy::from),
                        )
                        .set_template_selection_expression(stored.template_selection_expression.clone())
                        .set_response_templates(non_empty(&stored.response_templates))
                        .set_response_parameters(non_empty(&stored.response_parameters))
                        .build(),
                )
            })
        });
        let s = self.state.clone();
        let update = mock!(Client::update_integration_response).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            let mut sent = Vec::new();
            if input.integration_response_key().is_some() {
                sent.push("key")
            }
            if input.content_handling_strategy().is_some() {
                sent.push("contentHandlingStrategy")
            }
            if input.template_selection_expression().is_some() {
                sent.push("templateSelectionExpression")
            }
            if input.response_templates().is_some() {
                sent.push("responseTemplates")
            }
            if input.response_parameters().is_some() {
                sent.push("responseParameters")
            }
            let name = format!("UpdateIntegrationResponse[{}]", sent.join(","));
            state.calls.push(name);
            if let Some(change) = state.interleaved.get_mut("UpdateIntegrationResponse").and_then(VecDeque::pop_front) {
                change(&mut state);
            }
            if let Some(response) = state.scripted("UpdateIntegrationResponse").or_else(|| state.chaos_before()) {
                return MockResponse::Http(response);
            }
            let (api, int, id) =
                (input.api_id().unwrap(), input.integration_id().unwrap(), input.integration_response_id().unwrap());
            if let Err(response) = state.find(api, int, id) {
                return MockResponse::Http(response);
            }
            if let Err(response) = state.mutate(api) {
                return MockResponse::Http(response);
            }
            let merge = state.merge_maps_on_update;
            let stored = state.responses.get_mut(id).unwrap();
            if let Some(key) = input.integration_response_key() {
                stored.key = key.into()
            }
            if let Some(c) = input.content_handling_strategy() {
                stored.content_handling = Some(c.as_str().into())
            }
            if let Some(t) = input.template_selection_expression() {
                stored.template_selection_expression = (!t.is_empty()).then(|| t.to_owned())
            }
            for (sent, kept) in [
                (input.response_templates(), &mut stored.response_templates),
                (input.response_parameters(), &mut stored.response_parameters),
            ] {
                match sent {
                    Some(sent) if merge => kept.extend(sorted(Some(sent))),
                    Some(sent) => *kept = sorted(Some(sent)),
                    None => {}
                }
            }
            let stored = stored.clone();
            if state.chaos_lost_reply() {
                return MockResponse::Http(error_response(500, "InternalServerErrorException", "reply lost"));
            }
            // AWS answers with the whole response as it stands after the update.
            MockResponse::Output(
                UpdateIntegrationResponseOutput::builder()
                    .integration_response_id(id)
                    .integration_response_key(&stored.key)
                    .set_content_handling_strategy(
                        stored.content_handling.as_deref().map(ContentHandlingStrategy::from),
                    )
                    .set_template_selection_expression(stored.template_selection_expression.clone())
                    .set_response_templates(non_empty(&stored.response_templates))
                    .set_response_parameters(non_empty(&stored.response_parameters))
                    .build(),
            )
        });
        let s = self.state.clone();
        let delete = mock!(Client::delete_integration_response).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("DeleteIntegrationResponse").unwrap_or_else(|| {
                let (api, int, id) = (
                    input.api_id().unwrap(),
                    input.integration_id().unwrap(),
                    input.integration_response_id().unwrap(),
                );
                if let Err(response) = state.find(api, int, id) {
                    return MockResponse::Http(response);
                }
                if let Err(response) = state.mutate(api) {
                    return MockResponse::Http(response);
                }
                state.responses.remove(id);
                if state.chaos_lost_reply() {
                    return MockResponse::Http(error_response(500, "InternalServerErrorException", "reply lost"));
                }
                MockResponse::Output(DeleteIntegrationResponseOutput::builder().build())
            })
        });
        // For export: the API (WebSocket unless listed in `http_apis`) and its integrations,
        // paged like the responses.
        let s = self.state.clone();
        let get_api = mock!(Client::get_api).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("GetApi").unwrap_or_else(|| {
                let api = input.api_id().unwrap();
                if !state.integrations.iter().any(|(a, _)| a == api) {
                    return MockResponse::Http(not_found("API"));
                }
                let protocol = if state.http_apis.contains(api) { "HTTP" } else { "WEBSOCKET" };
                MockResponse::Output(
                    GetApiOutput::builder().api_id(api).protocol_type(ProtocolType::from(protocol)).build(),
                )
            })
        });
        let s = self.state.clone();
        let integrations = mock!(Client::get_integrations).then_compute_response(move |input| {
            let mut state = s.lock().unwrap();
            state.begin("GetIntegrations").unwrap_or_else(|| {
                let api = input.api_id().unwrap();
                let all: Vec<String> =
                    state.integrations.iter().filter(|(a, _)| a == api).map(|(_, i)| i.clone()).collect();
                if all.is_empty() {
                    return MockResponse::Http(not_found("API"));
                }
                let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap()).min(all.len());
                let end = (start + state.page_size).min(all.len());
                let items = all[start..end].iter().map(|id| {
                    Integration::builder().integration_id(id).integration_type(IntegrationType::Mock).build()
                });
                let mut output = GetIntegrationsOutput::builder().set_items(Some(items.collect()));
                if end < all.len() {
                    output = output.next_token(end.to_string());
                }
                MockResponse::Output(output.build())
            })
        });
        // Retries off, as the operator configures its clients: every attempt goes through the
        // pacer and the controller's backoff.
        let slow = SlowMutations {
            inner: aws_smithy_mocks::create_mock_http_client(),
            state: self.state.clone(),
            who: who.to_owned(),
        };
        mock_client!(
            aws_sdk_apigatewayv2,
            RuleMode::MatchAny,
            &[&get, &list, &create, &update, &delete, &get_api, &integrations],
            |config| {
                config
                    .retry_config(aws_sdk_apigatewayv2::config::retry::RetryConfig::disabled())
                    .http_client(SharedHttpClient::new(slow.clone()))
            }
        )
    }
}

impl State {
    /// From inside a [`FakeAws::before_next`] hook: fails the call being answered.
    pub fn fail_this_call(&mut self, operation: &'static str, response: HttpResponse) {
        self.failures.entry(operation).or_default().push_front(response);
    }

    /// From inside a hook: runs `change` before the following call of `operation`.
    pub fn before_next(&mut self, operation: &'static str, change: impl FnOnce(&mut State) + Send + 'static) {
        self.interleaved.entry(operation).or_default().push_back(Box::new(change));
    }

    /// Stores a response as another tool would have created it.
    pub fn insert(&mut self, api_id: &str, integration_id: &str, key: &str) -> String {
        let id = self.new_id();
        let stored = Stored {
            api_id: api_id.into(),
            integration_id: integration_id.into(),
            id: id.clone(),
            key: key.into(),
            ..Default::default()
        };
        self.responses.insert(id.clone(), stored);
        id
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("ir{:04}", self.next_id)
    }

    fn scripted(&mut self, operation: &'static str) -> Option<HttpResponse> {
        self.failures.get_mut(operation).and_then(VecDeque::pop_front)
    }

    /// Logs the call, runs what was interleaved before it, and returns a scripted or random
    /// failure, if there is one.
    fn begin<O, E>(&mut self, operation: &'static str) -> Option<MockResponse<O, E>> {
        self.calls.push(operation.to_owned());
        if let Some(change) = self.interleaved.get_mut(operation).and_then(VecDeque::pop_front) {
            change(self);
        }
        if let Some(response) = self.chaos_before() {
            return Some(MockResponse::Http(response));
        }
        self.scripted(operation).map(MockResponse::Http)
    }

    fn chaos_before(&mut self) -> Option<HttpResponse> {
        use rand::Rng;
        let chaos = self.chaos.as_mut()?;
        let roll: f64 = chaos.rng.random();
        if roll < chaos.throttle {
            Some(error_response(429, "TooManyRequestsException", "Too Many Requests"))
        } else if roll < chaos.throttle + chaos.server_error {
            Some(error_response(500, "InternalServerErrorException", "injected"))
        } else {
            None
        }
    }

    /// Whether the answer to a mutation that took effect is lost on its way back.
    fn chaos_lost_reply(&mut self) -> bool {
        use rand::Rng;
        self.chaos.as_mut().is_some_and(|chaos| chaos.rng.random::<f64>() < chaos.lost_reply)
    }

    /// A mutation of `api` starts now; refused while another is still in flight.
    fn mutate(&mut self, api: &str) -> Result<(), HttpResponse> {
        let now = Instant::now();
        if self.busy_until.get(api).is_some_and(|until| now < *until) {
            self.calls.push("ConflictException".into());
            return Err(concurrent_modification());
        }
        if !self.mutation_latency.is_zero() {
            self.busy_until.insert(api.to_owned(), now + self.mutation_latency);
        }
        Ok(())
    }

    fn parent(&self, api: &str, int: &str) -> Result<(), HttpResponse> {
        if !self.integrations.iter().any(|(a, _)| a == api) {
            return Err(not_found("API"));
        }
        if !self.integrations.contains(&(api.to_owned(), int.to_owned())) {
            return Err(not_found("Integration"));
        }
        Ok(())
    }

    fn find(&self, api: &str, int: &str, id: &str) -> Result<Stored, HttpResponse> {
        self.parent(api, int)?;
        self.responses
            .get(id)
            .filter(|r| r.api_id == api && r.integration_id == int)
            .cloned()
            .ok_or_else(|| not_found("IntegrationResponse"))
    }
}

fn sorted(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

fn non_empty(map: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// API Gateway's answer to a change that overlaps another change of the same API.
pub fn concurrent_modification() -> HttpResponse {
    error_response(
        409,
        "ConflictException",
        "Unable to complete operation due to concurrent modification. Please try again later.",
    )
}

/// The mock HTTP client, with mutations (anything but GET) answered after the fake's
/// `mutation_latency`: the fake applies a change when the call starts, and the caller sees the
/// answer only later, which is the window in which API Gateway refuses other changes.
#[derive(Clone, Debug)]
struct SlowMutations {
    inner: SharedHttpClient,
    state: Arc<Mutex<State>>,
    who: String,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("responses", &self.responses.len()).finish_non_exhaustive()
    }
}

impl HttpClient for SlowMutations {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        let inner = self.inner.http_connector(settings, components);
        SharedHttpConnector::new(SlowConnector { inner, state: self.state.clone(), who: self.who.clone() })
    }
}

#[derive(Debug)]
struct SlowConnector {
    inner: SharedHttpConnector,
    state: Arc<Mutex<State>>,
    who: String,
}

impl HttpConnector for SlowConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let (latency, gate) = {
            let state = self.state.lock().unwrap();
            let latency = if request.method() == "GET" { Duration::ZERO } else { state.mutation_latency };
            (latency, state.gate.clone())
        };
        let what = format!("{} {}", request.method(), request.uri());
        let who = self.who.clone();
        let answer = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if let Some(gate) = gate {
                gate(who, what).await;
            }
            answer.await
        })
    }
}
