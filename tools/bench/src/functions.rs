//! The functions the bench measures: every function of a template, each called with its sample
//! event (`events/<binary>.json`, filled by `test_support::samples`). Nothing here names a
//! function: a new one is measured in every section once the template and its event exist.

use std::path::Path;

use anyhow::Context as _;
use local_lambda::{RouteSpec, Template};
use serde_json::Value;
use test_support::samples::{SampleRequest, request_of, sample_event_path};

/// One function and how a client calls it.
#[derive(Clone, Debug)]
pub struct Function {
    /// The template's logical id (what the emulator's reports name).
    pub logical_id: String,
    /// The binary (`target/<profile>/<binary>`, `target/lambda/<binary>/bootstrap.zip`).
    pub binary: String,
    /// How the bench names it in a table: its first route, or how it is invoked.
    pub label: String,
    /// Its sample event, placeholders and all.
    pub sample: String,
    /// Whether its sample request carries a password (a body field `password` or `*_password`:
    /// argon2 work, section 4).
    pub password_work: bool,
    /// Whether EventBridge invokes it on a schedule (the health check and purge).
    pub scheduled: bool,
    /// Whether an API route serves it (its requests pay the API's price too).
    pub routed: bool,
}

impl Function {
    /// The HTTP request of its (filled) sample, `None` when it is invoked directly.
    pub fn request(&self, filled: &str) -> anyhow::Result<Option<SampleRequest>> {
        let event: Value = serde_json::from_str(filled).context("a sample event is JSON")?;
        Ok(request_of(&event))
    }
}

/// Every function of `template`, with its sample event from `root`'s `events/`.
pub fn load(template: &Path, root: &Path) -> anyhow::Result<Vec<Function>> {
    let parsed = Template::load(template, "us-east-1")?;
    parsed
        .functions
        .into_iter()
        .map(|spec| {
            let path = sample_event_path(root, &spec.binary);
            let sample = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: every function has a sample event", path.display()))?;
            let label = match spec.routes.first() {
                Some(route @ RouteSpec::Route { .. }) => route.key(),
                Some(RouteSpec::Default) => "$default".to_owned(),
                None if spec.custom_resource => format!("{} (custom resource)", spec.binary),
                None => format!("{} (invoked)", spec.binary),
            };
            let event: Value =
                serde_json::from_str(&sample).with_context(|| format!("{} is JSON", path.display()))?;
            let body = request_of(&event).map(|request| request.body).unwrap_or_default();
            let fields = serde_json::from_str::<Value>(&body).ok();
            let password_work = fields
                .as_ref()
                .and_then(Value::as_object)
                .is_some_and(|fields| fields.keys().any(|field| field.ends_with("password")));
            Ok(Function {
                password_work,
                scheduled: !spec.schedules.is_empty(),
                routed: !spec.routes.is_empty(),
                logical_id: spec.logical_id,
                binary: spec.binary,
                label,
                sample,
            })
        })
        .collect()
}
