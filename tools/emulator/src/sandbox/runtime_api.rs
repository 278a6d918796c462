//! The Runtime API and the Extensions API a sandbox's processes talk to, on the sandbox's own
//! loopback port: `/next` long polls, responses and errors, extension registration and events.
//! Served from the sandbox's [`Shared`] state.

use super::*;

const RUNTIME_PREFIX: &str = "/2018-06-01/runtime";
const EXTENSION_PREFIX: &str = "/2020-01-01/extension";

type HttpResponse = Response<Full<Bytes>>;

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set so that aborting the server ends its long polls too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(route(&shared, request).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn route(shared: &Shared, request: Request<Incoming>) -> HttpResponse {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::GET && path == format!("{RUNTIME_PREFIX}/invocation/next") {
        return next_invocation(shared).await;
    }
    if method == Method::POST && path == format!("{RUNTIME_PREFIX}/init/error") {
        let body = body_text(request).await;
        shared.log.line(&shared.function.logical_id, format!("INIT_ERROR {body}"));
        shared.lock().init_error = Some(body);
        shared.changed.notify_waiters();
        return accepted();
    }
    if method == Method::POST
        && let Some(rest) = path.strip_prefix(&format!("{RUNTIME_PREFIX}/invocation/"))
    {
        if let Some(id) = rest.strip_suffix("/response") {
            let id = id.to_owned();
            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return answer(shared, &id, RuntimeAnswer::Response(body));
        }
        if let Some(id) = rest.strip_suffix("/error") {
            let id = id.to_owned();
            let error_type = request
                .headers()
                .get("lambda-runtime-function-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("Unhandled")
                .to_owned();
            let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            return answer(shared, &id, RuntimeAnswer::Error { error_type, body });
        }
    }
    if method == Method::POST && path == format!("{EXTENSION_PREFIX}/register") {
        return register_extension(shared, request).await;
    }
    if method == Method::GET && path == format!("{EXTENSION_PREFIX}/event/next") {
        let id = request
            .headers()
            .get("lambda-extension-identifier")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return next_extension_event(shared, id.as_deref().unwrap_or_default()).await;
    }
    if method == Method::POST
        && (path.ends_with("/extension/init/error") || path.ends_with("/extension/exit/error"))
    {
        let body = body_text(request).await;
        shared.log.line(&shared.function.logical_id, format!("EXTENSION_ERROR {path} {body}"));
        return accepted();
    }
    lambda_error(
        StatusCode::NOT_FOUND,
        "InvalidRequest",
        &format!("{method} {path} is not part of the emulated APIs"),
    )
}

async fn next_invocation(shared: &Shared) -> HttpResponse {
    let (sender, receiver) = oneshot::channel();
    {
        let mut state = shared.lock();
        state.first_next_at.get_or_insert_with(Instant::now);
        state.registration_closed = true;
        state.next.push(sender);
    }
    shared.changed.notify_waiters();
    let Ok(delivery) = receiver.await else {
        return lambda_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "the sandbox is shutting down",
        );
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &delivery.request_id)
        .header("lambda-runtime-deadline-ms", delivery.deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", shared.function.arn())
        .header("lambda-runtime-trace-id", &delivery.trace_id)
        .body(Full::new(delivery.payload))
        .expect("a valid response")
}

fn answer(shared: &Shared, request_id: &str, runtime_answer: RuntimeAnswer) -> HttpResponse {
    let current = {
        let mut state = shared.lock();
        let index = state.current.iter().position(|current| current.request_id == request_id);
        index.map(|index| state.current.swap_remove(index))
    };
    let Some(current) = current else {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("{request_id} is not the current invocation"),
        );
    };
    let _ = current.reply.send(runtime_answer);
    shared.changed.notify_waiters();
    accepted()
}

async fn register_extension(shared: &Shared, request: Request<Incoming>) -> HttpResponse {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(name) = header("lambda-extension-name") else {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "the Lambda-Extension-Name header is missing",
        );
    };
    let wants_account_id = header("lambda-extension-accept-feature").is_some_and(|f| f.contains("accountId"));
    let body: Value = request
        .into_body()
        .collect()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b.to_bytes()).ok())
        .unwrap_or(Value::Null);
    let Some(events) = body.get("events").and_then(Value::as_array) else {
        return lambda_error(StatusCode::BAD_REQUEST, "InvalidRequest", "the body needs an \"events\" array");
    };
    let events: Vec<&str> = events.iter().filter_map(Value::as_str).collect();
    if let Some(unknown) = events.iter().find(|e| !matches!(**e, "INVOKE" | "SHUTDOWN")) {
        return lambda_error(
            StatusCode::BAD_REQUEST,
            "InvalidEventType",
            &format!("{unknown} is not INVOKE or SHUTDOWN"),
        );
    }
    let external = shared.function.extensions.iter().any(|path| file_name(path) == name);
    let id = Uuid::new_v4().to_string();
    {
        let mut state = shared.lock();
        if state.registration_closed {
            return lambda_error(
                StatusCode::FORBIDDEN,
                "Extension.InvalidState",
                "extensions must register before the runtime's first /invocation/next",
            );
        }
        if state.extensions.iter().any(|e| e.name == name) {
            return lambda_error(
                StatusCode::CONFLICT,
                "Extension.AlreadyRegistered",
                &format!("{name} is already registered"),
            );
        }
        state.extensions.push(Extension {
            id: id.clone(),
            name: name.clone(),
            external,
            invoke: events.contains(&"INVOKE"),
            shutdown: events.contains(&"SHUTDOWN"),
            waiting: None,
            queue: VecDeque::new(),
        });
    }
    shared.changed.notify_waiters();
    let kind = if external { "external" } else { "internal" };
    shared.log.line(
        &shared.function.logical_id,
        format!("EXTENSION Name: {name} State: Registered Kind: {kind} Events: {events:?}"),
    );
    let mut body = json!({
        "functionName": shared.function.name,
        "functionVersion": "$LATEST",
        "handler": shared.function.handler,
    });
    if wants_account_id {
        body["accountId"] = json!(ACCOUNT_ID);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-extension-identifier", id)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

async fn next_extension_event(shared: &Shared, id: &str) -> HttpResponse {
    let receiver = {
        let mut state = shared.lock();
        let Some(extension) = state.extensions.iter_mut().find(|e| e.id == id) else {
            return lambda_error(
                StatusCode::FORBIDDEN,
                "Extension.UnknownExtensionIdentifier",
                "unknown extension identifier",
            );
        };
        match extension.queue.pop_front() {
            Some(event) => Ok(event),
            None => {
                let (sender, receiver) = oneshot::channel();
                extension.waiting = Some(sender);
                Err(receiver)
            }
        }
    };
    shared.changed.notify_waiters();
    let event = match receiver {
        Ok(event) => event,
        Err(receiver) => match receiver.await {
            Ok(event) => event,
            Err(_) => {
                return lambda_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceException",
                    "the sandbox is gone",
                );
            }
        },
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-extension-event-identifier", Uuid::new_v4().to_string())
        .body(Full::new(Bytes::from(event.to_string())))
        .expect("a valid response")
}

async fn body_text(request: Request<Incoming>) -> String {
    let bytes = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn accepted() -> HttpResponse {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"status":"OK"}"#)))
        .expect("a valid response")
}

fn lambda_error(status: StatusCode, error_type: &str, message: &str) -> HttpResponse {
    let body = json!({ "errorMessage": message, "errorType": error_type });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}
