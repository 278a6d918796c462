//! The Lambda wiring every function shares: logging, the graceful-shutdown hook, and the one
//! path every request takes to its handler (the issuer learnt first; errors and panics become
//! JSON answers, never a 502).

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use lambda_http::Request;
use lambda_http::request::LambdaRequest;
use lambda_runtime::{Diagnostic, LambdaEvent, Service as _, service_fn};
use serde_json::Value;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, fmt};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{Reply, Response};

/// Crates that log what passes through them: at TRACE the Lambda runtime prints every raw event
/// (a request body, with its password or refresh token), the HTTP stack and the AWS SDK print
/// requests and responses, and the SDK's signer the canonical request (with the session token
/// header). Targets match by plain prefix: `lambda_` is lambda_runtime, lambda_runtime_api_client
/// and lambda_extension; `aws_` is the SDK (aws_smithy_*, aws_sigv4, aws_config, ...); `hyper`
/// also covers hyper_util.
const PINNED: [&str; 4] = ["lambda_", "aws_", "hyper", "h2"];

/// The most the [`PINNED`] crates may log, whatever `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` say.
const PINNED_LEVEL: LevelFilter = LevelFilter::INFO;

/// A filter every line must also pass: it caps the [`PINNED`] crates and lets everything else
/// through to the user's filter. A separate layer, not directives added to the user's filter:
/// there, a more specific target (`lambda_runtime::layers=trace`) or a span directive
/// (`[{requestId}]=trace`) would win over ours.
fn pinned_levels() -> Targets {
    Targets::new().with_default(LevelFilter::TRACE).with_targets(PINNED.map(|target| (target, PINNED_LEVEL)))
}

/// Installs the `tracing` subscriber: JSON lines in Lambda (unless `AWS_LAMBDA_LOG_FORMAT` is
/// `Text`), level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else `info` with SQL statement
/// logging at errors only. The runtime's and the HTTP clients' own crates never log above
/// `info`, so no level prints a request or response body. Every line inside an invocation
/// carries its `requestId`, from the runtime's span.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| level.to_lowercase()))
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=error"));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("text"));
    let subscriber = tracing_subscriber::registry().with(pinned_levels()).with(filter);
    // No colour codes: they would end up in CloudWatch as escape sequences.
    // Lambda timestamps every line itself; a second clock in the line is noise.
    let lines = fmt::layer().with_target(false).without_time().with_ansi(false);
    if text {
        subscriber.with(lines).init();
    } else {
        subscriber
            .with(lines.json().with_current_span(true).with_span_list(false).flatten_event(true))
            .init();
    }
}

/// Builds the function's state from its environment, registers the graceful-shutdown hook (an
/// internal extension, so Lambda sends SIGTERM before it ends the sandbox; the hook closes the
/// pool), and serves `handler` until the sandbox goes away.
///
/// Each event is made safe to convert ([`event::sanitize`](crate::event::sanitize)), then
/// `lambda_http` turns it into a `Request`, whichever front door sent it, and the handler's
/// response back into that front door's shape. Every request reaches the handler through
/// [`handle`]: a derived issuer learns the API from it first, and the handler's `Err` and its
/// panics are answered there, once for every function ([`answer`]). An event that is no front
/// door's (a direct invocation) fails the invocation. With `AWS_LAMBDA_MAX_CONCURRENCY` above 1
/// (Lambda Managed Instances) the runtime polls that many invocations at once; without it, one at
/// a time.
pub async fn run(needs: crate::config::Needs, handler: Handler) -> Result<(), lambda_runtime::Error> {
    serve(needs, handler, false).await
}

/// A handler as the runtime holds it: a plain function whose future is boxed. So the runtime's
/// machinery (lambda_runtime's poller and tower layers, lambda_http's adapter) is one
/// non-generic function, compiled once in this crate, and a function's binary compiles and links
/// little more than its `main` (BENCHMARKS.md, section 8: the build cost per function). The box
/// costs one allocation per invocation.
pub type Handler = fn(&'static App, Request) -> BoxFuture<'static, Reply>;

/// Like [`run`], for the health function, which also takes EventBridge's schedule: an event
/// that is no front door's reaches the handler as a request whose body is the event
/// (`lambda_http`'s `pass_through`).
pub async fn run_with_events(
    needs: crate::config::Needs,
    handler: Handler,
) -> Result<(), lambda_runtime::Error> {
    serve(needs, handler, true).await
}

async fn serve(
    needs: crate::config::Needs,
    handler: Handler,
    events: bool,
) -> Result<(), lambda_runtime::Error> {
    let app = start(needs).await?;
    let answering = service_fn(move |request: Request| {
        let response = handle(app, handler, request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<Value>| {
        // lambda_http's own adapter: the event's front door decides the response's shape.
        let mut adapter = lambda_http::Adapter::from(answering);
        async move {
            let LambdaEvent { mut payload, context } = event;
            crate::event::sanitize(&mut payload, needs.query);
            let request: LambdaRequest = serde_json::from_value(payload).map_err(|error| Diagnostic {
                error_type: "InvalidEvent".into(),
                error_message: format!("the event is not JSON lambda_http reads: {error}"),
            })?;
            if !events && matches!(request, LambdaRequest::PassThrough(_)) {
                return Err(Diagnostic {
                    error_type: "InvalidEvent".into(),
                    error_message: "this function answers HTTP requests (API Gateway, a function URL, \
                                    an Application Load Balancer) only"
                        .into(),
                });
            }
            adapter.call(LambdaEvent::new(request, context)).await.map_err(|never: Infallible| match never {})
        }
    }))
    .await
}

/// Like [`run`], for a function that is not behind the HTTP API (migrate): its handler's `Err`
/// is a failed invocation (posted to the runtime's `/error`, so `aws lambda invoke` reports a
/// `FunctionError` and an asynchronous invoker retries), and it sees the invocation's context
/// (its deadline).
pub async fn run_task(needs: crate::config::Needs, task: Task) -> Result<(), lambda_runtime::Error> {
    let app = start(needs).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| task(app, event))).await
}

/// A handler of direct invocations as the runtime holds it ([`Handler`]'s counterpart for
/// [`run_task`]): the event and the answer as JSON.
pub type Task = fn(&'static App, LambdaEvent<Value>) -> BoxFuture<'static, Result<Value, Diagnostic>>;

/// A function's whole `main`: logging, then [`run`] on a runtime of one thread.
pub fn main(needs: crate::config::Needs, handler: Handler) -> Result<(), lambda_runtime::Error> {
    on_one_thread(run(needs, handler))
}

/// [`main`] for a function that also takes EventBridge's schedule ([`run_with_events`]).
pub fn main_with_events(needs: crate::config::Needs, handler: Handler) -> Result<(), lambda_runtime::Error> {
    on_one_thread(run_with_events(needs, handler))
}

/// [`main`] for a function invoked directly ([`run_task`]).
pub fn main_task(needs: crate::config::Needs, task: Task) -> Result<(), lambda_runtime::Error> {
    on_one_thread(run_task(needs, task))
}

/// Logging, then `serving` to its end on a runtime of one thread (Managed Instances' concurrent
/// invocations are polled on it side by side; argon2 runs on its blocking pool).
fn on_one_thread(
    serving: impl Future<Output = Result<(), lambda_runtime::Error>>,
) -> Result<(), lambda_runtime::Error> {
    init_tracing();
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(serving)
}

/// Builds the function's state and registers the graceful-shutdown hook.
async fn start(needs: crate::config::Needs) -> Result<&'static App, lambda_runtime::Error> {
    let app: &'static App = match App::from_env(needs) {
        Ok(app) => Box::leak(Box::new(app)),
        Err(error) => {
            // Returned to the runtime, which reports it to /init/error: the sandbox never serves.
            tracing::error!(error = ?error, "initialisation failed");
            return Err(error.into());
        }
    };
    app.warm_up().await;
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        app.shutdown().await;
        tracing::info!("shutdown: the pool is closed");
    })
    .await;
    Ok(app)
}

/// Serves one request with `handler`, as every function does (the tests too): a derived issuer
/// learns the API from the request first ([`App::learn_issuer`]), so no handler has to, then
/// the handler's outcome is [`answer`]ed.
pub async fn handle<'a, F, Fut>(app: &'a App, handler: F, mut request: Request) -> Response
where
    F: FnOnce(&'a App, Request) -> Fut,
    Fut: Future<Output = Reply>,
{
    if let Err(refused) = crate::http::through_origin(&mut request, &app.origin_secrets) {
        return refused.into_response();
    }
    app.learn_issuer(&request);
    answer(handler(app, request)).await
}

/// Runs a handler's future into the response the client gets: `Err` through
/// [`ApiError::into_response`], and a panic as a logged 500 JSON answer so the sandbox keeps
/// serving (the release profile keeps `panic = "unwind"` for this).
pub async fn answer(handler: impl Future<Output = Reply>) -> Response {
    match AssertUnwindSafe(handler).catch_unwind().await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".to_owned());
            ApiError::Unexpected(anyhow::anyhow!("the handler panicked: {message}")).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

    #[test]
    fn the_runtime_and_http_crates_are_pinned_and_ours_are_not() {
        let pinned = pinned_levels();

        for target in [
            "lambda_runtime::layers::api_response",
            "lambda_runtime_api_client::body",
            "lambda_extension::extension",
            "aws_sigv4::http_request::sign",
            "aws_config::default_provider",
            "hyper_util::client::legacy::pool",
            "h2::codec",
            "aws_smithy_runtime::client::orchestrator::http",
        ] {
            assert!(!pinned.would_enable(target, &tracing::Level::DEBUG), "{target} logs at debug");
            assert!(pinned.would_enable(target, &tracing::Level::INFO), "{target} is silenced at info");
        }
        for target in ["shared::accounts", "login", "sqlx::query", "local_lambda"] {
            assert!(
                pinned.would_enable(target, &tracing::Level::TRACE),
                "{target} is not the user's to raise"
            );
        }
    }

    fn text(response: &Response) -> &str {
        match response.body() {
            Body::Text(text) => text,
            other => panic!("not a text body: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_with_a_500_json_body() {
        let response = answer(async { panic!("boom") }).await;
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = serde_json::from_str(text(&response)).unwrap();
        assert_eq!(body["error"], "internal_error");
        assert!(!text(&response).contains("boom"), "the panic message must not leak: {}", text(&response));
    }

    #[tokio::test]
    async fn an_error_is_answered_with_its_status_and_code() {
        let response = answer(async { Err(ApiError::EmailTaken) }).await;
        assert_eq!(response.status(), 409);
        let body: serde_json::Value = serde_json::from_str(text(&response)).unwrap();
        assert_eq!(body["error"], "email_taken");
    }

    #[tokio::test]
    async fn a_handler_that_returns_is_passed_through() {
        let response = answer(async { Ok(crate::http::empty(204)) }).await;
        assert_eq!(response.status(), 204);
    }
}
