//! AWS outages end to end (issue 10, item 0, "Retries keep their schedule"): the real operator
//! binary against the Kubernetes API emulator and moto, with a TCP proxy (`support::proxy`) in
//! front of moto that can be taken down or made to throttle at run time. The proxy records every
//! request, so attempts are counted and timed per object: each object here has an integration of
//! its own (or a known set of objects shares one), and every AWS call names its integration.
//! Tests run one at a time: each starts its own processes, and the machine has two cores.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_apigatewayv2::error::ProvideErrorMetadata;
use aws_sdk_apigatewayv2::types::IntegrationType;
use integration_response_operator::crd::IntegrationResponse;
use kube::api::ListParams;
use support::moto::Moto;
use support::proxy::{Mode, Proxy, Request};
use support::stack::{Operator, Stack, WAIT, eventually, ready};
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The operator's schedule for throttling, 5xx and network errors (`Schedule::TRANSIENT`):
/// base 1 s, doubling, "equal jitter", capped at 300 s.
const BASE: Duration = Duration::from_secs(1);
const CAP: Duration = Duration::from_secs(300);
/// Slack for the timing of the operator's timers against the proxy's clock.
const GAP_TOLERANCE: Duration = Duration::from_millis(100);

/// The shortest wait the schedule allows before attempt `k` (0-based; `k >= 1`), which follows
/// `k` failures: the delay after `k - 1` earlier failures is in `[d/2, d]`, `d = base * 2^(k-1)`.
fn min_gap(k: usize) -> Duration {
    let exponent = (k - 1).min(31) as u32;
    BASE.saturating_mul(1u32 << exponent).min(CAP) / 2
}

/// The operator started against the stack, with its AWS endpoint at the proxy; waits until it
/// has listed its objects.
async fn operator_behind(stack: &Stack, proxy: &Proxy, extra: &[(&str, &str)]) -> Operator {
    let mut env = vec![("AWS_ENDPOINT_URL_APIGATEWAYV2", proxy.endpoint.as_str())];
    env.extend_from_slice(extra);
    let operator = stack.operator(&env);
    eventually(WAIT, "the operator to be ready", Some(&operator), || async {
        (operator.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    operator
}

/// `count` more MOCK integrations on the stack's WebSocket API, made in moto directly (not
/// through the proxy).
async fn integrations(stack: &Stack, count: usize) -> Vec<String> {
    let aws = stack.moto.client().await;
    let mut ids = Vec::new();
    for _ in 0..count {
        let created = aws
            .create_integration()
            .api_id(&stack.api_id)
            .integration_type(IntegrationType::Mock)
            .send()
            .await
            .expect("create integration in moto");
        ids.push(created.integration_id().unwrap().to_owned());
    }
    ids
}

/// The responses moto holds for one integration, read directly.
async fn responses_in_moto(
    stack: &Stack,
    integration_id: &str,
) -> Vec<aws_sdk_apigatewayv2::types::IntegrationResponse> {
    stack
        .moto
        .client()
        .await
        .get_integration_responses()
        .api_id(&stack.api_id)
        .integration_id(integration_id)
        .send()
        .await
        .expect("list in moto")
        .items
        .unwrap_or_default()
}

/// Polls every 100 ms until every object in `names` is Ready or `limit` has passed; returns
/// when each was first seen Ready, after `since`.
async fn ready_times(
    stack: &Stack,
    names: &[String],
    since: Instant,
    limit: Duration,
) -> BTreeMap<String, Option<Duration>> {
    let mut seen: BTreeMap<String, Option<Duration>> = names.iter().map(|n| (n.clone(), None)).collect();
    let deadline = since + limit;
    while seen.values().any(Option::is_none) && Instant::now() < deadline {
        if let Ok(list) = stack.api().list(&ListParams::default()).await {
            let now = Instant::now();
            for object in list.items.iter().filter(|o| ready(o)) {
                if let Some(slot) = object.metadata.name.as_ref().and_then(|n| seen.get_mut(n)) {
                    slot.get_or_insert(now - since);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    seen
}

/// `Ready` reason and message of every object, as a person would see them.
async fn ready_conditions(stack: &Stack) -> Vec<String> {
    let list = stack.api().list(&ListParams::default()).await.expect("list objects");
    list.items
        .iter()
        .map(|o: &IntegrationResponse| {
            let condition = o.status.as_ref().and_then(|s| s.condition("Ready"));
            format!(
                "{}: {}",
                o.metadata.name.as_deref().unwrap_or_default(),
                condition
                    .map(|c| format!("{} {} ({})", c.status, c.reason, c.message))
                    .unwrap_or("no Ready condition".into())
            )
        })
        .collect()
}

/// A list that asks for one item: the operator's "is AWS back?" probe, not a reconcile's lookup.
fn is_probe(request: &Request) -> bool {
    request.path.contains("maxResults=")
}

fn seconds(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn since(request: &Request, start: Instant) -> Duration {
    request.at.saturating_duration_since(start)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_when_up_resets_when_down_and_throttles_on_demand() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let moto = Moto::start();
    let (api_id, integration_id) = moto.websocket_integration().await;
    let proxy = Proxy::in_front_of(&moto).await;
    let config = moto.loader().endpoint_url(&proxy.endpoint).retry_config(RetryConfig::disabled()).load().await;
    let client = aws_sdk_apigatewayv2::Client::new(&config);
    let list = || client.get_integration_responses().api_id(&api_id).integration_id(&integration_id).send();

    // Up: three calls (one with a body) on one keep-alive connection reach moto.
    assert_eq!(list().await.expect("list through the proxy").items.unwrap_or_default().len(), 0);
    client
        .create_integration_response()
        .api_id(&api_id)
        .integration_id(&integration_id)
        .integration_response_key("$default")
        .template_selection_expression("$integration.response.statuscode")
        .send()
        .await
        .expect("create through the proxy");
    assert_eq!(list().await.expect("list through the proxy").items.unwrap_or_default().len(), 1);

    // Down: the call fails without an answer, on the open connection as on a new one.
    proxy.down();
    let err = list().await.expect_err("no answer while down");
    println!("while down: {err:?}");
    assert!(err.as_service_error().is_none(), "no HTTP answer while down: {err:?}");
    assert!(list().await.is_err());

    // Throttle: API Gateway's 429, for a call with a body too; nothing reaches moto.
    proxy.throttle();
    let err = list().await.expect_err("429 while throttling");
    assert_eq!(err.code(), Some("TooManyRequestsException"), "{err:?}");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429));
    let err = client
        .create_integration_response()
        .api_id(&api_id)
        .integration_id(&integration_id)
        .integration_response_key("/5\\d\\d/")
        .send()
        .await
        .expect_err("429 while throttling");
    assert_eq!(err.code(), Some("TooManyRequestsException"), "{err:?}");

    // Up again: calls reach moto, which holds only the response created while up.
    proxy.up();
    assert_eq!(list().await.expect("list after coming back").items.unwrap_or_default().len(), 1);

    let seen: Vec<(Mode, String, Option<String>)> =
        proxy.requests().iter().map(|r| (r.mode, r.method.clone(), r.integration_id().map(str::to_owned))).collect();
    let on = Some(integration_id.clone());
    assert_eq!(
        seen,
        [
            (Mode::Up, "GET".into(), on.clone()),
            (Mode::Up, "POST".into(), on.clone()),
            (Mode::Up, "GET".into(), on.clone()),
            (Mode::Down, "GET".into(), on.clone()),
            (Mode::Down, "GET".into(), on.clone()),
            (Mode::Throttle, "GET".into(), on.clone()),
            (Mode::Throttle, "POST".into(), on.clone()),
            (Mode::Up, "GET".into(), on.clone()),
        ]
    );
    let requests = proxy.requests();
    assert!(
        requests[0].is_list_responses() && !requests[1].is_list_responses() && requests[1].is_integration_responses()
    );
    assert!(requests.windows(2).all(|w| w[0].elapsed <= w[1].elapsed));
}

#[test]
fn request_paths_are_attributed_to_integrations() {
    let request = |method: &str, path: &str| Request {
        at: Instant::now(),
        elapsed: Duration::ZERO,
        method: method.into(),
        path: path.into(),
        target: None,
        mode: Mode::Up,
    };
    let list = request("GET", "/v2/apis/a1/integrations/i1/integrationresponses");
    assert_eq!(list.integration_id(), Some("i1"));
    assert!(list.is_list_responses() && list.is_integration_responses());
    let create = request("POST", "/v2/apis/a1/integrations/i2/integrationresponses");
    assert_eq!(create.integration_id(), Some("i2"));
    assert!(!create.is_list_responses() && create.is_integration_responses());
    let one = request("GET", "/v2/apis/a1/integrations/i3/integrationresponses/r1");
    assert!(!one.is_list_responses() && one.is_integration_responses());
    assert_eq!(request("GET", "/v2/apis/a1").integration_id(), None);
    assert_eq!(request("GET", "/v2/apis/a1/integrations?maxResults=5").integration_id(), None);
    assert_eq!(min_gap(1), Duration::from_millis(500));
    assert_eq!(min_gap(6), Duration::from_secs(16));
    assert_eq!(min_gap(20), Duration::from_secs(150));
}

/// Five objects applied while AWS is unreachable for 40 s: each is retried on the TRANSIENT
/// schedule (at most 8 attempts, no two closer than the schedule allows), and all are Ready
/// within 30 s of AWS coming back, with exactly one response each. Every request on an object's
/// integration while AWS is down counts as an attempt of that object: a create attempt begins
/// with GetIntegrationResponses and ends at its first failed call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_retried_on_schedule_and_recovered_from_promptly() {
    const OBJECTS: usize = 5;
    const OUTAGE: Duration = Duration::from_secs(40);
    const MAX_ATTEMPTS: usize = 8;
    const RECOVERY: Duration = Duration::from_secs(30);
    /// How long recovery is watched, to report the figure when it is over `RECOVERY`.
    const WATCH: Duration = Duration::from_secs(60);

    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let integration_ids = integrations(&stack, OBJECTS).await;
    let proxy = Proxy::in_front_of(&stack.moto).await;
    let operator = operator_behind(&stack, &proxy, &[]).await;

    proxy.down();
    let down_at = Instant::now();
    let mut names = Vec::new();
    let mut integration_of = BTreeMap::new();
    for (i, integration_id) in integration_ids.iter().enumerate() {
        let name = format!("outage-{i}");
        stack.apply(&support::integration_response(&name, &stack.api_id, integration_id)).await;
        integration_of.insert(name.clone(), integration_id.clone());
        names.push(name);
    }
    sleep_until(down_at + OUTAGE).await;
    let conditions_in_outage = ready_conditions(&stack).await;
    proxy.up();
    let up_at = Instant::now();
    let ready_at = ready_times(&stack, &names, up_at, WATCH).await;

    let requests = proxy.requests();
    let mut failures = Vec::new();
    println!("--- outage of {}: attempts per object (times since the proxy went down) ---", seconds(OUTAGE));
    for name in &names {
        let integration_id = &integration_of[name];
        // An object's attempts are its reconciles. The operator-wide probe (one small list with
        // `maxResults`, every 5 s while objects wait, checked below) is no attempt of an object.
        let attempts: Vec<&Request> = requests
            .iter()
            .filter(|r| r.mode == Mode::Down && r.integration_id() == Some(integration_id) && !is_probe(r))
            .collect();
        let times: Vec<Duration> = attempts.iter().map(|r| since(r, down_at)).collect();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let not_lists = attempts.iter().filter(|r| !r.is_list_responses()).count();
        let first_after_up =
            requests.iter().find(|r| r.mode == Mode::Up && r.at >= up_at && r.integration_id() == Some(integration_id));
        println!(
            "{name} ({integration_id}): {} attempts{}; at [{}]; gaps [{}]; first call after up: {}; Ready after up: {}",
            attempts.len(),
            if not_lists > 0 { format!(" ({not_lists} not GetIntegrationResponses)") } else { String::new() },
            attempts.iter().map(|r| seconds(since(r, down_at))).collect::<Vec<_>>().join(", "),
            gaps.iter().map(|g| seconds(*g)).collect::<Vec<_>>().join(", "),
            first_after_up.map(|r| seconds(since(r, up_at))).unwrap_or("none".into()),
            ready_at[name].map(seconds).unwrap_or(format!("not within {}", seconds(WATCH))),
        );
        // (a) at most 8 attempts during the outage.
        if attempts.len() > MAX_ATTEMPTS {
            failures
                .push(format!("{name}: {} attempts during the outage, at most {MAX_ATTEMPTS} allowed", attempts.len()));
        }
        // (b) the k-th gap is at least 0.5 s * 2^(k-1), less a little tolerance.
        for (index, gap) in gaps.iter().enumerate() {
            let k = index + 1;
            let least = min_gap(k).saturating_sub(GAP_TOLERANCE);
            if *gap < least {
                failures.push(format!(
                    "{name}: gap {k} (attempts {} to {k}) was {}, the schedule allows no less than {} (minus {} tolerance)",
                    k - 1,
                    seconds(*gap),
                    seconds(min_gap(k)),
                    seconds(GAP_TOLERANCE)
                ));
            }
        }
        // (c) Ready within 30 s of AWS coming back.
        match ready_at[name] {
            Some(after) if after <= RECOVERY => {}
            Some(after) => failures.push(format!(
                "{name}: Ready {} after AWS came back, limit {}",
                seconds(after),
                seconds(RECOVERY)
            )),
            None => failures.push(format!(
                "{name}: not Ready {} after AWS came back, limit {}",
                seconds(WATCH),
                seconds(RECOVERY)
            )),
        }
        // (d) exactly one response in moto.
        let in_moto = responses_in_moto(&stack, integration_id).await.len();
        if in_moto != 1 {
            failures.push(format!("{name}: {in_moto} responses in moto, expected exactly 1"));
        }
    }
    // The probe is bounded: at most one every 5 s for the whole operator, however many objects wait.
    let probes = requests.iter().filter(|r| r.mode == Mode::Down && is_probe(r)).count();
    let most_probes = (OUTAGE.as_secs() / 5 + 1) as usize;
    println!("probes during the outage: {probes} (at most {most_probes})");
    if probes > most_probes {
        failures.push(format!("{probes} probes during the outage, at most {most_probes} allowed"));
    }
    let outage_calls = requests.iter().filter(|r| r.mode == Mode::Down).count();
    let unattributed = requests.iter().filter(|r| r.mode == Mode::Down && r.integration_id().is_none()).count();
    println!("calls during the outage: {outage_calls} ({unattributed} not on an integration)");
    println!("Ready conditions at the end of the outage:\n  {}", conditions_in_outage.join("\n  "));
    let slowest = ready_at.values().flatten().max().copied();
    println!(
        "all Ready after up: {}",
        slowest.filter(|_| ready_at.values().all(Option::is_some)).map(seconds).unwrap_or("no".into())
    );
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}\n--- operator log (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&operator)
    );
}

/// A throttling storm of 60 s during which 50 objects are created (over 10 integrations): the
/// operator's calls stay within its rate limit throughout, and every object is Ready within
/// 15 s of the storm ending (seconds, not a backoff period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_storm_keeps_the_pace_and_ends_in_seconds() {
    const INTEGRATIONS: usize = 10;
    const PER_INTEGRATION: usize = 5;
    const STORM: Duration = Duration::from_secs(60);
    /// Objects are created one by one over the first part of the storm, so that when it ends
    /// they sit at different points of their backoff.
    const CREATION_SPREAD: Duration = Duration::from_secs(25);
    const RECOVERY: Duration = Duration::from_secs(15);
    const WATCH: Duration = Duration::from_secs(40);
    /// The operator's pacing in this test: API Gateway's account-wide limit of 10 calls per
    /// second (the stack's 50 per second would not constrain 50 objects in backoff at all).
    const RPS: f64 = 10.0;
    const BURST: f64 = 10.0;
    /// Slack in calls for the timing of the pacer against the proxy's clock.
    const CALL_TOLERANCE: f64 = 1.0;

    let _serial = ONE_AT_A_TIME.lock().await;
    let stack = Stack::start().await;
    let integration_ids = integrations(&stack, INTEGRATIONS).await;
    let proxy = Proxy::in_front_of(&stack.moto).await;
    let rps = RPS.to_string();
    let burst = BURST.to_string();
    let operator = operator_behind(
        &stack,
        &proxy,
        &[("AWS_RATE_LIMIT_RPS", rps.as_str()), ("AWS_RATE_LIMIT_BURST", burst.as_str())],
    )
    .await;

    proxy.throttle();
    let storm_at = Instant::now();
    let total = INTEGRATIONS * PER_INTEGRATION;
    let mut names = Vec::new();
    for n in 0..total {
        sleep_until(storm_at + CREATION_SPREAD.mul_f64(n as f64 / total as f64)).await;
        let (integration, slot) = (n % INTEGRATIONS, n / INTEGRATIONS);
        let name = format!("storm-{n:02}");
        let mut object = support::integration_response(&name, &stack.api_id, &integration_ids[integration]);
        object.spec.integration_response_key = format!("/40{slot}/");
        stack.apply(&object).await;
        names.push(name);
    }
    sleep_until(storm_at + STORM).await;
    let conditions_in_storm = ready_conditions(&stack).await;
    proxy.up();
    let up_at = Instant::now();
    let ready_at = ready_times(&stack, &names, up_at, WATCH).await;

    let requests = proxy.requests();
    let mut failures = Vec::new();

    // Pacing: in every window [t_i, t_j] of the storm, at most burst + rps * (t_j - t_i) calls.
    let times: Vec<f64> =
        requests.iter().filter(|r| r.mode == Mode::Throttle).map(|r| since(r, storm_at).as_secs_f64()).collect();
    let calls = times.len();
    let mut worst = (f64::MIN, 0usize, 0usize);
    for i in 0..calls {
        for j in i..calls {
            let excess = (j - i + 1) as f64 - RPS * (times[j] - times[i]);
            if excess > worst.0 {
                worst = (excess, i, j);
            }
        }
    }
    let busiest_second =
        (0..calls).map(|i| times[i..].iter().take_while(|t| **t < times[i] + 1.0).count()).max().unwrap_or(0);
    let rate = calls as f64 / STORM.as_secs_f64();
    println!("--- throttling storm of {}: {total} objects over {INTEGRATIONS} integrations ---", seconds(STORM));
    println!(
        "calls during the storm: {calls} = {rate:.2}/s on average (limit {RPS}/s, burst {BURST}); busiest second: {busiest_second} calls"
    );
    if calls > 0 {
        println!(
            "worst window: {} calls from {:.3}s to {:.3}s, {:.2} over the rate (burst {BURST})",
            worst.2 - worst.1 + 1,
            times[worst.1],
            times[worst.2],
            worst.0
        );
    }
    let mut per_integration = BTreeMap::new();
    for r in requests.iter().filter(|r| r.mode == Mode::Throttle) {
        *per_integration.entry(r.integration_id().unwrap_or("(none)").to_owned()).or_insert(0usize) += 1;
    }
    println!("calls during the storm per integration: {per_integration:?}");
    let per_second: Vec<usize> = (0..STORM.as_secs() as usize)
        .map(|s| times.iter().filter(|t| **t >= s as f64 && **t < (s + 1) as f64).count())
        .collect();
    println!("calls per second of the storm: {per_second:?}");
    if calls as f64 > RPS * STORM.as_secs_f64() + BURST + CALL_TOLERANCE {
        failures.push(format!("{calls} calls in {} is over {RPS}/s plus a burst of {BURST}", seconds(STORM)));
    }
    if worst.0 > BURST + CALL_TOLERANCE {
        failures.push(format!(
            "{} calls between {:.3}s and {:.3}s of the storm: more than {RPS}/s plus a burst of {BURST}",
            worst.2 - worst.1 + 1,
            times[worst.1],
            times[worst.2]
        ));
    }

    let mut late = Vec::new();
    for name in &names {
        match ready_at[name] {
            Some(after) if after <= RECOVERY => {}
            Some(after) => late.push(format!("{name} Ready after {}", seconds(after))),
            None => late.push(format!("{name} not Ready within {}", seconds(WATCH))),
        }
    }
    let mut recovery: Vec<Duration> = ready_at.values().flatten().copied().collect();
    recovery.sort();
    let count_ready = recovery.len();
    println!(
        "Ready after the storm: {count_ready}/{total}; median {}, slowest {}",
        recovery.get(count_ready / 2).copied().map(seconds).unwrap_or("-".into()),
        recovery.last().copied().map(seconds).unwrap_or("-".into())
    );
    let after_storm = requests.iter().filter(|r| r.at >= up_at).count();
    let first_after =
        requests.iter().find(|r| r.at >= up_at).map(|r| seconds(since(r, up_at))).unwrap_or("none".into());
    println!("calls after the storm until all Ready (or {}): {after_storm}; first at {first_after}", seconds(WATCH));
    let reasons: BTreeMap<String, usize> = conditions_in_storm.iter().fold(BTreeMap::new(), |mut acc, c| {
        let reason = c.split_once(": ").map(|(_, r)| r.split(" (").next().unwrap_or_default()).unwrap_or_default();
        *acc.entry(reason.to_owned()).or_insert(0) += 1;
        acc
    });
    println!("Ready status/reason at the end of the storm: {reasons:?}");
    if !late.is_empty() {
        failures.push(format!(
            "{} objects not Ready within {} of the storm ending: {}",
            late.len(),
            seconds(RECOVERY),
            late.join(", ")
        ));
    }
    // No object has more than one response; every Ready object has its own.
    for (integration, integration_id) in integration_ids.iter().enumerate() {
        let in_moto = responses_in_moto(&stack, integration_id).await;
        for slot in 0..PER_INTEGRATION {
            let name = format!("storm-{:02}", slot * INTEGRATIONS + integration);
            let key = format!("/40{slot}/");
            let count = in_moto.iter().filter(|r| r.integration_response_key() == Some(key.as_str())).count();
            if count > 1 {
                failures.push(format!("{name}: {count} responses with key {key} in moto, expected one"));
            } else if count == 0 && ready_at[&name].is_some() {
                failures.push(format!("{name}: Ready but no response with key {key} in moto"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed checks:\n{}\n--- operator log (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&operator)
    );
}

fn tail(operator: &Operator) -> String {
    let logs = operator.logs();
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
