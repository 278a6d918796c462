//! The static pages of `--static-dir`, which stand in for the web app the mail links open: served
//! for a GET that matches no route, never outside their folder, never in place of a route. With
//! the bash runtime of tests/fixtures, whose one route is `GET /{behaviour}`.

use std::path::Path;

use crate::helpers::{TempDir, fixtures};
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_lambda::{Emulator, EmulatorConfig};

const PAGE: &str = "<!doctype html>\n<title>A page</title>\n<p>Hello from the stand-in app.</p>\n";

/// A folder holding `pages/` (the static dir) with `app/page.html` and `ok.html`, and beside
/// `pages/` a `secret.html` that no request may reach.
fn site() -> TempDir {
    let site = TempDir::new();
    site.write("pages/app/page.html", PAGE);
    site.write("pages/ok.html", "<p>the page, not the function</p>");
    site.write("secret.html", "<p>secret</p>");
    site
}

async fn start(static_dir: &Path) -> Emulator {
    let mut config = EmulatorConfig::new(fixtures().join("template.yaml"), fixtures());
    config.sandbox_limits = false;
    config.static_dir = Some(static_dir.to_path_buf());
    Emulator::start(config).await.expect("the emulator starts")
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

/// Sends `method path` as is (hyper's client does not normalize `..`).
async fn send(emulator: &Emulator, method: Method, path: &str) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(method)
        .uri(format!("{}{path}", emulator.base_url()))
        .body(Full::new(Bytes::new()))
        .expect("a request");
    let response = client.request(request).await.expect("an HTTP answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.expect("a body").to_bytes();
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn header<'a>(answer: &'a Answer, name: &str) -> &'a str {
    answer.headers.get(name).map_or("", |value| value.to_str().unwrap())
}

const NOT_FOUND: &str = r#"{"message":"Not Found"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_that_matches_no_route_is_answered_with_its_page() {
    let site = site();
    let emulator = start(&site.path().join("pages")).await;

    let page = send(&emulator, Method::GET, "/app/page?from=mail").await;
    let head = send(&emulator, Method::HEAD, "/app/page").await;

    assert_eq!((page.status, page.body.as_str()), (200, PAGE));
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-store");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(header(&head, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&head, "content-length"), PAGE.len().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_pages_other_methods_and_paths_out_of_the_folder_are_not_found() {
    let site = site();
    let emulator = start(&site.path().join("pages")).await;

    for (method, path) in [
        (Method::GET, "/app/missing"),
        (Method::POST, "/app/page"),
        (Method::GET, "/app/page.html"),
        (Method::GET, "/../secret"),
        (Method::GET, "/app/../../secret"),
        (Method::GET, "/%2e%2e/secret"),
        (Method::GET, "/app//page"),
        (Method::GET, "/"),
    ] {
        let answer = send(&emulator, method.clone(), path).await;

        assert_eq!((answer.status, answer.body.as_str()), (404, NOT_FOUND), "{method} {path}");
        assert_eq!(header(&answer, "content-type"), "application/json", "{method} {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_wins_over_a_page_of_the_same_path() {
    let site = site();
    let emulator = start(&site.path().join("pages")).await;

    let answer = send(&emulator, Method::GET, "/ok").await;

    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"), "the function answered, not ok.html");
    assert_eq!(header(&answer, "content-type"), "text/plain");
}
