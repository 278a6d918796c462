//! The API's whole contract over real HTTP, through the emulated HTTP API and the real function
//! binaries.

use crate::helpers::{AUDIENCE, TestApi, email};
use http::Method;
use local_lambda::{FrontDoor, InvocationStatus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_up_logs_in_refreshes_reads_me_and_logs_out() {
    the_whole_contract(&TestApi::start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_binaries_serve_the_contract_behind_a_rest_api() {
    the_whole_contract(&TestApi::start_with(|config| config.front_door = FrontDoor::RestApi).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_binaries_serve_the_contract_behind_function_urls() {
    the_whole_contract(&TestApi::start_with(|config| config.front_door = FrontDoor::FunctionUrl).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_binaries_serve_the_contract_behind_a_load_balancer() {
    the_whole_contract(&TestApi::start_with(|config| config.front_door = FrontDoor::Alb).await).await;
}

/// Signup, login, refresh, me, logout, health, JWKS and discovery, and the error answers a
/// client sees most (401 with `WWW-Authenticate`, 415, 400), whichever front door is in front.
async fn the_whole_contract(api: &TestApi) {
    let email = email();

    let signup = api.post_signup(&email).await;
    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(signup.body["user"]["email"], email.as_str());
    assert_eq!(signup.header("content-type"), Some("application/json"));
    assert!(signup.header("apigw-requestid").is_some(), "the gateway names each request");

    let login = api.post_login(&email).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["token_type"], "Bearer");

    let refresh = api.post_refresh(&login.refresh_token()).await;
    assert_eq!(refresh.status, 200, "{}", refresh.text);
    assert_ne!(refresh.refresh_token(), login.refresh_token(), "refresh rotates the token");

    let me = api.get_me(&refresh.access_token()).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["email"], email.as_str());

    let logout = api.post_logout(&refresh.refresh_token()).await;
    assert_eq!(logout.status, 204, "{}", logout.text);
    assert!(logout.text.is_empty());
    let after_logout = api.post_refresh(&refresh.refresh_token()).await;
    assert_eq!(after_logout.status, 401, "a logged-out session cannot refresh: {}", after_logout.text);

    let health = api.get("/health").await;
    assert_eq!(health.status, 200, "{}", health.text);
    assert_eq!(health.body["status"], "healthy");

    let jwks = api.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200, "{}", jwks.text);
    assert_eq!(jwks.body["keys"][0]["kid"], "e2e-key");

    let discovery = api.get("/.well-known/openid-configuration").await;
    assert_eq!(discovery.status, 200, "{}", discovery.text);
    assert!(discovery.body["jwks_uri"].as_str().unwrap().ends_with("/.well-known/jwks.json"));

    let unauthenticated = api.get("/auth/me").await;
    assert_eq!(
        (unauthenticated.status, unauthenticated.body["error"].as_str()),
        (401, Some("missing_token"))
    );
    assert_eq!(unauthenticated.header("www-authenticate"), Some("Bearer"));
    let as_text =
        api.request(Method::POST, "/auth/login", &[("content-type", "text/plain")], Some("{}")).await;
    assert_eq!((as_text.status, as_text.body["error"].as_str()), (415, Some("unsupported_media_type")));
    let malformed = api
        .request(Method::POST, "/auth/login", &[("content-type", "application/json")], Some("{\"email\":"))
        .await;
    assert_eq!((malformed.status, malformed.body["error"].as_str()), (400, Some("malformed_json")));

    let claims = jwt_claims(&login.access_token());
    assert_eq!(claims["aud"], AUDIENCE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_match_no_route_get_api_gateways_not_found() {
    let api = TestApi::start().await;

    let unknown = api.get("/auth/nowhere").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.text, r#"{"message":"Not Found"}"#);

    // HTTP APIs route on method and path together, so a known path with another method matches
    // no route: 404, not 405.
    let wrong_method = api.request(Method::GET, "/auth/signup", &[], None).await;
    assert_eq!(wrong_method.status, 404);
    assert_eq!(wrong_method.text, r#"{"message":"Not Found"}"#);

    assert!(api.emulator.invocations().is_empty(), "no function runs for an unmatched route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_is_a_cold_start_and_the_next_reuses_the_warm_sandbox() {
    let api = TestApi::start().await;

    assert_eq!(api.get("/health").await.status, 200);
    assert_eq!(api.get("/health").await.status, 200);

    let invocations = api.invocations(2).await;
    assert_eq!(invocations.len(), 2, "{invocations:?}");
    let (cold, warm) = (&invocations[0], &invocations[1]);
    assert!(cold.is_cold_start() && !warm.is_cold_start(), "{invocations:?}");
    assert_eq!(cold.sandbox_id, warm.sandbox_id);
    assert!(invocations.iter().all(|i| i.status == InvocationStatus::Success));
    assert!(cold.max_memory_used_mb.is_some_and(|mb| mb > 0));
    assert!(cold.billed_duration_ms >= cold.init_duration.unwrap().as_millis() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_start_more_sandboxes_but_never_more_than_the_limit() {
    let api = TestApi::start_with(|config| config.max_sandboxes_per_function = 2).await;

    let requests = (0..6).map(|_| {
        let email = email();
        let api = &api;
        async move { api.post_signup(&email).await }
    });
    let responses = futures_util::future::join_all(requests).await;

    assert!(
        responses.iter().all(|r| r.status == 201),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // Six requests at once and a 2-sandbox limit: the first two each find no idle sandbox and
    // cold-start one (an init takes far longer than the requests take to arrive); the other
    // four queue for those two.
    let sandboxes = api.emulator.sandboxes("SignupFunction").unwrap();
    assert_eq!(sandboxes.len(), 2, "{sandboxes:?}");
    let invocations = api.invocations(6).await;
    assert_eq!(invocations.len(), 6);
    let mut used: Vec<u64> = invocations.iter().map(|i| i.sandbox_id).collect();
    used.sort_unstable();
    used.dedup();
    assert_eq!(used.len(), 2, "both sandboxes served, and no third: {used:?}");
}

fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The sample events `make invoke` takes (`events/health*.json`), one per front door: each is
/// answered in its own front door's response shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_front_door_s_sample_event_is_answered_in_that_front_door_s_shape() {
    let api = TestApi::start().await;
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events");
    let cases = [
        ("health.json", "headers"),
        ("health-rest-api.json", "multiValueHeaders"),
        ("health-function-url.json", "headers"),
        ("health-alb.json", "statusDescription"),
    ];
    for (file, shape) in cases {
        let event = std::fs::read(events.join(file)).unwrap();
        let outcome = api.emulator.invoke("HealthFunction", event.into()).await.expect("an invocation");
        let local_lambda::InvokeOutcome::Response(payload) = outcome else {
            panic!("{file}: the invocation failed: {outcome:?}")
        };
        let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(answer["statusCode"], 200, "{file}: {answer}");
        assert!(answer.get(shape).is_some_and(|value| !value.is_null()), "{file} has no {shape}: {answer}");
        let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["status"], "healthy", "{file}");
    }
}

/// What a client can put in an event through a front door and lambda_http's conversion would
/// panic on (a raw query string with a quote or a space, a `Host` that is no host, a scheme that
/// is none, a body flagged base64 that does not decode) is answered with a 4xx JSON error by the
/// real binary; an event that is no front door's fails the invocation of an HTTP function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_events_get_json_errors_and_non_http_events_fail_the_invocation() {
    let api = TestApi::start().await;
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /auth/login", "rawPath": "/auth/login",
        "rawQueryString": "a=\"x\"&q=a b",
        "headers": {"host": "exa mple", "x-forwarded-proto": "evil scheme", "content-type": "application/json"},
        "body": "%%%", "isBase64Encoded": true,
        "requestContext": {"apiId": "local", "stage": "$default", "requestId": "r",
                           "http": {"method": "POST", "path": "/auth/login", "sourceIp": "192.0.2.1"}},
    });
    let outcome =
        api.emulator.invoke("LoginFunction", event.to_string().into()).await.expect("an invocation");
    let local_lambda::InvokeOutcome::Response(payload) = outcome else {
        panic!("the invocation failed: {outcome:?}")
    };
    let answer: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(answer["statusCode"], 400, "{answer}");
    let body: serde_json::Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"], "malformed_json");

    let schedule =
        serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let outcome =
        api.emulator.invoke("LoginFunction", schedule.to_string().into()).await.expect("an invocation");
    let local_lambda::InvokeOutcome::FunctionError { body, .. } = outcome else {
        panic!("answered: {outcome:?}")
    };
    let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error["errorType"], "InvalidEvent", "{error}");
}
