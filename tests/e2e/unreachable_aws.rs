//! Secrets Manager that never answers, as a VPC without an interface endpoint or a NAT makes it:
//! the real binary answers the 503 JSON once the SDK's bounds have passed, instead of hanging on
//! retries until Lambda kills it. Two black holes: a listener that accepts and never answers
//! (the attempt and operation timeouts), and one whose queue is full, so it never accepts
//! (the connect timeout).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd as _;
use std::time::Duration;

use crate::helpers::{TestApi, use_local_secrets_manager};
use shared::secrets::{CONNECT_TIMEOUT, OPERATION_TIMEOUT};

/// Room for the process, the emulator and a loaded machine. A bound, not a speed claim: the
/// defect it catches is a call that waits on the network with no bound at all (until the
/// function's 10 s Lambda timeout, and then a 502/504 instead of the JSON).
const MARGIN: Duration = Duration::from_millis(1500);

/// A listener that completes TCP handshakes (the kernel does) but never reads or writes.
fn silent_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("a loopback listener")
}

/// A listener that never completes a handshake: its accept queue is made as short as the kernel
/// allows and filled, so further SYNs are dropped and a connect waits until its own timeout.
/// Returns the connections that fill the queue, to be kept open.
fn full_listener() -> (TcpListener, Vec<TcpStream>) {
    let listener = silent_listener();
    // SAFETY: listen(2) on a socket we own; calling it again only changes the backlog.
    let listened = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(listened, 0, "listen: {}", std::io::Error::last_os_error());
    let address = listener.local_addr().expect("the listener's address");
    let mut fillers = Vec::new();
    loop {
        match TcpStream::connect_timeout(&address, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => break,
            Err(error) => panic!("filling the accept queue: {error}"),
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    (listener, fillers)
}

/// The JWKS function (no database: its only network call is the secret) pointed at `address`.
async fn api_with_secrets_manager_at(address: SocketAddr) -> TestApi {
    TestApi::start_with(|config| {
        use_local_secrets_manager(config, &format!("http://{address}"), "test", "test");
        let env = &mut config.env_overrides;
        env.remove_for_all("JWT_PUBLIC_KEYS");
        env.set_for_all(
            "JWT_VERIFICATION_KEYS_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth/verification-AbCdEf",
        );
    })
    .await
}

/// Two requests: the first also waits for the sandbox's init, whose warm-up tries the same
/// secret (one more bounded call); the second meets a warm sandbox. Both must be the 503 JSON.
async fn assert_503_within_the_bounds(api: &TestApi, per_call: Duration) {
    let cold = api.get("/.well-known/jwks.json").await;
    let warm = api.get("/.well-known/jwks.json").await;

    for (name, response, bound) in
        [("cold", &cold, 2 * per_call + MARGIN), ("warm", &warm, per_call + MARGIN)]
    {
        assert_eq!(response.status, 503, "{name}: {}", response.text);
        assert_eq!(response.body["error"], "service_unavailable", "{name}: {}", response.text);
        assert!(response.elapsed < bound, "{name}: answered after {:?}, bound {bound:?}", response.elapsed);
    }
}

#[tokio::test]
async fn a_secrets_manager_that_accepts_and_never_answers_is_a_503_within_the_operation_timeout() {
    let listener = silent_listener();
    let api = api_with_secrets_manager_at(listener.local_addr().unwrap()).await;

    assert_503_within_the_bounds(&api, OPERATION_TIMEOUT).await;
}

#[tokio::test]
async fn a_secrets_manager_that_never_accepts_is_a_503_within_the_connect_timeouts() {
    let (listener, _fillers) = full_listener();
    let api = api_with_secrets_manager_at(listener.local_addr().unwrap()).await;

    // Each attempt ends at the connect timeout; the operation timeout caps them and the backoff.
    assert!(CONNECT_TIMEOUT < OPERATION_TIMEOUT);
    assert_503_within_the_bounds(&api, OPERATION_TIMEOUT).await;
}
