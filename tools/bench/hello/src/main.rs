//! A minimal `lambda_http` function answering `{"hello":"world"}`: what a Rust function costs
//! with nothing of ours in it (cold start, warm latency, memory, size). `make bench` measures
//! every function against it.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"hello":"world"}"#))?;
    Ok(response)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
