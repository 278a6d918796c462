//! The emulated HTTP API as the rehearsal calls it, and the invocation reports behind its
//! answers.

use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use local_lambda::report::millis;
use local_lambda::{Emulator, FunctionSpec, InvocationReport, InvokeOutcome};
use serde_json::Value;
use test_support::samples::{Fixture, SampleRequest, request_of};

/// How long a function may take to answer one smoke request, cold start (under qemu) included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub fn text(body: &Value, field: &str) -> anyhow::Result<String> {
    body[field].as_str().map(str::to_owned).with_context(|| format!("no {field} in {body}"))
}

fn jwt_part(token: &str, index: usize) -> anyhow::Result<Value> {
    let part = token.split('.').nth(index).context("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).context("not base64url")?;
    serde_json::from_slice(&bytes).context("not JSON")
}

pub fn token_header(token: &str) -> anyhow::Result<Value> {
    jwt_part(token, 0)
}

pub fn token_claims(token: &str) -> anyhow::Result<Value> {
    jwt_part(token, 1)
}

/// The emulated HTTP API, and the invocation reports behind its answers.
pub struct Api<'a> {
    emulator: &'a Emulator,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Answer {
    status: u16,
    body: Value,
    text: String,
}

impl<'a> Api<'a> {
    pub fn new(emulator: &'a Emulator) -> Self {
        Self { emulator, client: Client::builder(TokioExecutor::new()).build_http() }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        let mut builder =
            Request::builder().method(method).uri(format!("{}{path}", self.emulator.base_url()));
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let payload = body.map(Value::to_string).unwrap_or_default();
        let request = builder.body(Full::new(Bytes::from(payload)))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{path} did not answer within {REQUEST_TIMEOUT:?}"))??;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body, text })
    }

    /// How many messages the local SES (moto at `AWS_ENDPOINT_URL_SESV2`) accepted for `to`,
    /// from moto's record of what it sent.
    pub async fn mail_accepted_for(&self, to: &str) -> anyhow::Result<usize> {
        let endpoint = std::env::var("AWS_ENDPOINT_URL_SESV2")
            .context("AWS_ENDPOINT_URL_SESV2 names no local SES (run under scripts/with-moto)")?;
        let uri = format!("{}/moto-api/data.json", endpoint.trim_end_matches('/'));
        let request = Request::builder().method(Method::GET).uri(&uri).body(Full::new(Bytes::new()))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{uri} did not answer"))??;
        let data: Value = serde_json::from_slice(&response.into_body().collect().await?.to_bytes())?;
        let messages = data["ses"]["RawMessage"].as_array().cloned().unwrap_or_default();
        Ok(messages
            .iter()
            .filter(|message| {
                message["destinations"]
                    .as_array()
                    .is_some_and(|all| all.iter().any(|d| d.as_str() == Some(to)))
            })
            .count())
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Answer> {
        self.request(Method::GET, path, token, None).await
    }

    /// Checks the status of an answer; the detail names the function that served it and its
    /// invocation's cold start (init duration) when it had one.
    pub async fn expect(
        &self,
        answer: impl Future<Output = anyhow::Result<Answer>>,
        status: u16,
    ) -> anyhow::Result<(Value, String)> {
        let before = self.emulator.invocations().len();
        let answer = answer.await?;
        ensure!(answer.status == status, "answered {} instead of {status}: {}", answer.status, answer.text);
        let report = self.report_after(before).await?;
        Ok((answer.body, describe(&report)))
    }

    /// The first invocation report after the first `skip` reports: the rehearsal sends one
    /// request at a time. Reports are written when the sandbox is back in `/next`, just after
    /// its answer.
    pub async fn report_after(&self, skip: usize) -> anyhow::Result<InvocationReport> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(report) = self.emulator.invocations_since(skip).into_iter().next() {
                return Ok(report);
            }
            ensure!(Instant::now() < deadline, "no invocation report within 5 s");
            // The reports have no notification to wait on: poll them.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Invokes `function` directly with `event`, as CloudFormation or EventBridge does: its
    /// answer, which must be a response, not a function error.
    pub async fn invoke(&self, function: &str, event: Vec<u8>) -> anyhow::Result<(Value, String)> {
        let before = self.emulator.invocations().len();
        let outcome =
            tokio::time::timeout(REQUEST_TIMEOUT, self.emulator.invoke(function, Bytes::from(event)))
                .await
                .with_context(|| format!("{function} did not answer within {REQUEST_TIMEOUT:?}"))??;
        let InvokeOutcome::Response(body) = outcome else {
            bail!("the invocation failed: {outcome:?}");
        };
        let answer: Value = serde_json::from_slice(&body).context("the response is not JSON")?;
        let report = self.report_after(before).await?;
        Ok((answer, describe(&report)))
    }

    /// `function`'s sample event (`event`), filled with a fresh account, as its caller sends it:
    /// through the front door, a 2xx; invoked directly, a response.
    pub async fn sample(
        &self,
        fixture: &Fixture,
        function: &FunctionSpec,
        event: &std::path::Path,
    ) -> anyhow::Result<((), String)> {
        let sample =
            std::fs::read_to_string(event).with_context(|| format!("reading {}", event.display()))?;
        let filled = fixture.fill(&sample).await?;
        let parsed: Value = serde_json::from_str(&filled).context("the sample is not JSON")?;
        match request_of(&parsed) {
            Some(request) => {
                let before = self.emulator.invocations().len();
                let answer = self.send(&request).await?;
                ensure!((200..300).contains(&answer.status), "answered {}: {}", answer.status, answer.text);
                let report = self.report_after(before).await?;
                Ok(((), format!("{} {}; {}", request.method, request.path, describe(&report))))
            }
            None => {
                let (_, detail) = self.invoke(&function.logical_id, filled.into_bytes()).await?;
                Ok(((), format!("invoked; {detail}")))
            }
        }
    }

    /// A sample's request through the emulated front door.
    async fn send(&self, sample: &SampleRequest) -> anyhow::Result<Answer> {
        let method = Method::from_bytes(sample.method.as_bytes())?;
        let mut builder =
            Request::builder().method(method).uri(format!("{}{}", self.emulator.base_url(), sample.path));
        for (name, value) in &sample.headers {
            builder = builder.header(name, value);
        }
        let request = builder.body(Full::new(Bytes::from(sample.body.clone())))?;
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request))
            .await
            .with_context(|| format!("{} did not answer within {REQUEST_TIMEOUT:?}", sample.path))??;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body, text })
    }

    /// An EventBridge schedule's event, invoked directly as EventBridge does: the function
    /// answers (no function error), and writes every metric in `watched` (the alarms on it that
    /// count a missing value as breaching: what only this run writes) at a value that does not
    /// set its alarm off.
    pub async fn scheduled(&self, function: &str, watched: &[WatchedMetric]) -> anyhow::Result<((), String)> {
        let event = serde_json::json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": local_lambda::template::ACCOUNT_ID,
            "time": "2026-01-01T00:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:123456789012:rule/rehearsal"], "detail": {},
        });
        let lines_before = self.emulator.log().lines().len();
        let (_, detail) = self.invoke(function, event.to_string().into_bytes()).await?;
        let lines = self.emulator.log().lines();
        let written: Vec<Value> = lines[lines_before.min(lines.len())..]
            .iter()
            .filter_map(|line| {
                line.split_once("] ").and_then(|(_, json)| serde_json::from_str::<Value>(json).ok())
            })
            .collect();
        let mut seen = Vec::new();
        for metric in watched {
            let value = written
                .iter()
                .find_map(|line| line.get(&metric.name).and_then(Value::as_f64))
                .with_context(|| format!("no metric line with {} in the function's output", metric.name))?;
            ensure!(!metric.alarms_at(value), "{} is {value}: its alarm would go off", metric.name);
            seen.push(format!("{} {value}", metric.name));
        }
        seen.push(detail);
        Ok(((), seen.join("; ")))
    }
}

/// A metric a CloudWatch alarm of the template watches on one function, treating a missing
/// value as breaching: (name, threshold, comparison operator).
#[derive(Clone)]
pub struct WatchedMetric {
    pub name: String,
    pub threshold: f64,
    pub comparison: String,
}

impl WatchedMetric {
    /// The metrics whose absence alarms, per function's logical id, read from the template.
    pub fn of(template: &Path) -> anyhow::Result<Vec<(String, WatchedMetric)>> {
        let text =
            std::fs::read_to_string(template).with_context(|| format!("reading {}", template.display()))?;
        let root: serde_yaml::Value = serde_yaml::from_str(&text).context("the template is not YAML")?;
        let mut watched = Vec::new();
        for (_, resource) in root["Resources"].as_mapping().into_iter().flatten() {
            let properties = &resource["Properties"];
            if resource["Type"].as_str() != Some("AWS::CloudWatch::Alarm")
                || properties["TreatMissingData"].as_str() != Some("breaching")
            {
                continue;
            }
            let function =
                properties["Dimensions"].as_sequence().into_iter().flatten().find_map(|dimension| {
                    let reference = match &dimension["Value"] {
                        serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Ref" => tagged.value.as_str(),
                        other => other.get("Ref").and_then(serde_yaml::Value::as_str),
                    };
                    (dimension["Name"].as_str() == Some("FunctionName")).then_some(reference).flatten()
                });
            let (Some(function), Some(name)) = (function, properties["MetricName"].as_str()) else {
                continue;
            };
            watched.push((
                function.to_owned(),
                WatchedMetric {
                    name: name.to_owned(),
                    threshold: number_or_default(&root, &properties["Threshold"]),
                    comparison: properties["ComparisonOperator"].as_str().unwrap_or_default().to_owned(),
                },
            ));
        }
        Ok(watched)
    }

    fn alarms_at(&self, value: f64) -> bool {
        match self.comparison.as_str() {
            "LessThanThreshold" => value < self.threshold,
            "LessThanOrEqualToThreshold" => value <= self.threshold,
            "GreaterThanThreshold" => value > self.threshold,
            "GreaterThanOrEqualToThreshold" => value >= self.threshold,
            _ => false,
        }
    }
}

/// A number of the template, or the default of the parameter it `!Ref`s (as a deploy that leaves
/// the parameter alone gives it); 0 for anything else.
fn number_or_default(root: &serde_yaml::Value, value: &serde_yaml::Value) -> f64 {
    let parameter = match value {
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "!Ref" => tagged.value.as_str(),
        other => other.get("Ref").and_then(serde_yaml::Value::as_str),
    };
    let value = parameter.map_or(value, |name| &root["Parameters"][name]["Default"]);
    value.as_f64().or_else(|| value.as_str().and_then(|text| text.parse().ok())).unwrap_or_default()
}

pub fn describe(report: &InvocationReport) -> String {
    let memory = report.max_memory_used_mb.map_or_else(String::new, |mb| format!(", peak RSS {mb} MB"));
    match report.init_duration {
        Some(init) => format!(
            "cold start: init {:.0} ms + invocation {:.0} ms{memory}",
            millis(init),
            millis(report.duration)
        ),
        None => format!("warm: invocation {:.0} ms{memory}", millis(report.duration)),
    }
}
