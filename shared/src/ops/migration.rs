//! The schema's migration: the embedded migrations applied as the schema owner, then the
//! application role granted what the API needs and nothing more; as the stack's `Migration`
//! custom resource (the outcome PUT to CloudFormation's `ResponseURL`) or run directly.
//!
//! Environment: the database settings of every function, here naming the schema owner
//! (`DB_SECRET_ARN` is the migration secret), and the application role: `DB_APPLICATION_ROLE`,
//! or the `username` of the secret `DB_APPLICATION_SECRET_ARN` (the other functions' secret).
//! With neither, nothing is granted (a single-role setup, such as a development database).

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AssertSqlSafe, Executor as _};
use tokio::sync::OnceCell;

use crate::app::App;
use crate::db::MIGRATOR;
use crate::ops::custom_resource::{self, Request, RequestType, Status};
use crate::secrets::Secrets;

/// Time kept back from the function's deadline to answer CloudFormation when the migration
/// overruns: without an answer, CloudFormation waits an hour.
const ANSWER_MARGIN: Duration = Duration::from_secs(5);

/// The custom resource's physical id (one schema per stack; it never changes, so CloudFormation
/// never replaces the resource, which would send a `Delete`).
const PHYSICAL_ID: &str = "auth-schema";

/// The custom resource's property naming the migrate code it was created for (template.yaml:
/// `CodeVersion: !Ref MigrateFunction.Version`, a version ARN).
const CODE_VERSION_PROPERTY: &str = "CodeVersion";

/// Whom the migration grants the application's privileges to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplicationRole {
    /// `DB_APPLICATION_ROLE`.
    Named(String),
    /// The `username` of the secret `DB_APPLICATION_SECRET_ARN`, read on every run.
    FromSecret(String),
    None,
}

impl ApplicationRole {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `DB_APPLICATION_ROLE`, else `DB_APPLICATION_SECRET_ARN`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        match (set("DB_APPLICATION_ROLE"), set("DB_APPLICATION_SECRET_ARN")) {
            (Some(role), _) => Self::Named(role),
            (None, Some(arn)) => Self::FromSecret(arn),
            (None, None) => Self::None,
        }
    }
}

/// Whether security events go out to EventBridge (`EVENTS_OUT`, the template's `EventsOut`):
/// on, the outbox trigger queues every new event for the events-out function; off, the
/// migration disables the trigger, so nothing is queued for a drain that is not deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventsOut {
    On,
    Off,
}

impl EventsOut {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `EVENTS_OUT`: only `false` turns events out off. Unset (the template always sets
    /// it, to `true` by default) or anything else keeps them on, with a warning for a value that
    /// is neither: a typo then queues events, which the backlog alarm tells of, rather than
    /// silently dropping them or failing the deploy.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        match lookup("EVENTS_OUT").as_deref().map(str::trim) {
            Some("false") => Self::Off,
            None | Some("" | "true") => Self::On,
            Some(other) => {
                tracing::warn!(value = other, "EVENTS_OUT is neither true nor false: events out stay on");
                Self::On
            }
        }
    }

    /// The statement that turns the outbox trigger on or off (as the table's owner), only when it
    /// is not already so: `alter table` locks out the event writers while it waits and runs, which
    /// a deploy that changes nothing should not do.
    fn statement(self) -> &'static str {
        match self {
            Self::On => {
                "do $events_out$ begin
                   if exists (select from pg_trigger where tgrelid = 'security_events'::regclass
                              and tgname = 'security_events_outbox' and tgenabled = 'D') then
                     alter table security_events enable trigger security_events_outbox;
                   end if;
                 end $events_out$"
            }
            Self::Off => {
                "do $events_out$ begin
                   if exists (select from pg_trigger where tgrelid = 'security_events'::regclass
                              and tgname = 'security_events_outbox' and tgenabled <> 'D') then
                     alter table security_events disable trigger security_events_outbox;
                   end if;
                 end $events_out$"
            }
        }
    }
}

/// The application secret's part migrate reads.
#[derive(Deserialize)]
struct ApplicationSecret {
    username: String,
}

/// The Secrets Manager client of the application secret, built on first use.
static SECRETS: OnceCell<Secrets> = OnceCell::const_new();

/// Migrates on `Create` and `Update`, and PUTs the outcome to the request's `ResponseURL`. Only
/// a failure to deliver that answer fails the invocation (so Lambda retries it; migrating again
/// is harmless).
pub async fn answer_cloudformation(
    app: &App,
    role: &ApplicationRole,
    events_out: EventsOut,
    request: &Request,
    deadline: SystemTime,
) -> anyhow::Result<Value> {
    tracing::info!(
        request_type = ?request.request_type,
        logical_resource_id = %request.logical_resource_id,
        "custom-resource request"
    );
    let (status, reason, data) = match request.request_type {
        RequestType::Delete => {
            (Status::Success, "nothing done: migrations are never undone".to_owned(), json!({}))
        }
        RequestType::Create | RequestType::Update
            if is_for_other_code(
                request,
                &std::env::var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_default(),
            ) =>
        {
            // A rollback's `Update` with the previous properties, sent while this (newer) code
            // still answers: the schema stays as it is (migrations are backward compatible).
            (Status::Success, "nothing done: the request is for other migrate code".to_owned(), json!({}))
        }
        RequestType::Create | RequestType::Update => {
            let budget =
                deadline.duration_since(SystemTime::now()).unwrap_or_default().saturating_sub(ANSWER_MARGIN);
            match tokio::time::timeout(budget, run(app, role, events_out)).await {
                Ok(Ok(done)) => (Status::Success, format!("migrated: {done}"), done),
                Ok(Err(error)) => {
                    tracing::error!(error = ?error, "the migration failed");
                    (Status::Failed, format!("{error:#}"), json!({}))
                }
                Err(_) => (
                    Status::Failed,
                    format!("the migration did not finish within {budget:?} (raise the function's Timeout)"),
                    json!({}),
                ),
            }
        }
    };
    let response = custom_resource::Response::to(request, status, &reason, PHYSICAL_ID, data);
    custom_resource::send(&request.response_url, &response)
        .await
        .context("answering CloudFormation at the ResponseURL")?;
    tracing::info!(status = ?status, "answered CloudFormation");
    Ok(json!({ "Status": status, "Reason": response.reason }))
}

/// Whether the request names a published version of the migrate code other than `running`
/// (`AWS_LAMBDA_FUNCTION_VERSION`). Unknown on either side (`$LATEST`, no property) counts as
/// this code.
fn is_for_other_code(request: &Request, running: &str) -> bool {
    let requested = request.resource_properties.get(CODE_VERSION_PROPERTY).and_then(Value::as_str);
    match (running.parse::<u64>(), requested.and_then(|arn| arn.rsplit(':').next())) {
        (Ok(running), Some(requested)) => {
            requested.parse::<u64>().is_ok_and(|requested| requested != running)
        }
        _ => false,
    }
}

/// Applies every pending migration, turns the security events' outbox on or off
/// ([`EventsOut`]), then grants the application role its privileges; answers
/// `{"migrations": N, "application_role": name or null, "events_out": bool}`. Also
/// `make migrate`'s (db-migrate).
pub async fn run(app: &App, role: &ApplicationRole, events_out: EventsOut) -> anyhow::Result<Value> {
    // Read before migrating: a missing or unreadable application secret changes nothing.
    let role_name = match role {
        ApplicationRole::Named(name) => Some(name.clone()),
        ApplicationRole::FromSecret(arn) => {
            let secrets = SECRETS.get_or_init(Secrets::from_env).await;
            let secret: ApplicationSecret =
                secrets.json(arn).await.context("reading the application role's secret")?;
            Some(secret.username)
        }
        ApplicationRole::None => None,
    };
    // A first connection through `connection()` picks up rotated credentials. With the
    // template's `DB_MAX_CONNECTIONS=1` it is the pool's only one and is kept between
    // invocations, so it goes back to the pool for the migrator to take (the migrator on a
    // borrowed connection makes a future rustc cannot prove `Send`).
    app.connection().await.map_err(anyhow::Error::new).context("connecting as the schema owner")?.release();
    let pool = app.db().await.map_err(anyhow::Error::new)?;
    migrator().run(pool).await.map_err(describe)?;
    let count = MIGRATOR.iter().count();
    tracing::info!(migrations = count, "migrations applied");
    let mut connection = app.connection().await.map_err(anyhow::Error::new)?;
    (&mut *connection)
        .execute(sqlx::raw_sql(events_out.statement()))
        .await
        .with_context(|| format!("turning the security events' outbox {events_out:?}"))?;
    drop(connection);
    tracing::info!(?events_out, "security events out");
    if let Some(name) = &role_name {
        let mut connection = app.connection().await.map_err(anyhow::Error::new)?;
        let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
        transaction
            .execute(sqlx::raw_sql(AssertSqlSafe(grants(name))))
            .await
            .with_context(|| format!("granting the application role {name:?} its privileges"))?;
        transaction.commit().await?;
        tracing::info!(role = %name, "privileges granted");
    }
    Ok(
        json!({ "migrations": count, "application_role": role_name, "events_out": events_out == EventsOut::On }),
    )
}

/// The embedded migrations, tolerating applied migrations this code does not know: an older
/// release (a rollback) runs against a schema a newer one extended.
fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(MIGRATOR.iter().cloned().collect());
    migrator.set_ignore_missing(true);
    migrator
}

/// A migration error, in one line that names the migration (version and description) when one
/// failed. Flattened: sqlx's messages already repeat their sources.
fn describe(error: MigrateError) -> anyhow::Error {
    let named = |version: &i64| {
        MIGRATOR.iter().find(|m| m.version == *version).map_or_else(
            || format!("migration {version}"),
            |m| format!("migration {} ({})", m.version, m.description),
        )
    };
    match &error {
        MigrateError::ExecuteMigration(cause, version) => {
            anyhow::anyhow!("{} failed: {cause}", named(version))
        }
        MigrateError::VersionMismatch(version) | MigrateError::Dirty(version) => {
            anyhow::anyhow!("{}: {error}", named(version))
        }
        _ => anyhow::anyhow!("migrating: {error}"),
    }
}

/// The statements that give `role` the API's privileges and nothing more, all idempotent:
/// usage on the current schema; select, insert, update and delete on its tables (but not on the
/// migrations' history, and only select and insert on `security_events`, which is append-only
/// for the API: its retention runs through the owner's `purge_security_events`, which only it
/// may run, and which keeps 400 days whatever it is asked; and no insert into
/// `security_event_outbox`, which only the owner's trigger fills, and whose rows it may only put
/// off or delete); usage and
/// select on its sequences; the same by default on what the
/// owner (the role running this) creates later. `create` on the schema is revoked from
/// `public` (Postgres before 15 grants it to everyone); as a non-owner, Postgres only warns.
pub fn grants(role: &str) -> String {
    let role = quote_identifier(role);
    format!(
        "do $grants$ begin
           execute format('revoke create on schema %I from public', current_schema());
           execute format('grant usage on schema %I to {role}', current_schema());
           execute format('grant select, insert, update, delete on all tables in schema %I to {role}',
                          current_schema());
           execute format('grant usage, select on all sequences in schema %I to {role}', current_schema());
           execute format('alter default privileges in schema %I
                             grant select, insert, update, delete on tables to {role}', current_schema());
           execute format('alter default privileges in schema %I
                             grant usage, select on sequences to {role}', current_schema());
         end $grants$;
         revoke all on table _sqlx_migrations from {role};
         revoke update, delete, truncate on table security_events from {role};
         grant execute on function purge_security_events(interval, integer) to {role};
         revoke insert, update, truncate on table security_event_outbox from {role};
         grant update (attempts, next_attempt_at, last_error) on table security_event_outbox to {role};"
    )
}

/// `name` as a quoted SQL identifier: in double quotes, each double quote doubled, so any role
/// name (capitals, spaces, quotes) is that role and nothing else.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_name_is_quoted_as_one_identifier() {
        assert_eq!(quote_identifier("auth_app"), "\"auth_app\"");
        assert_eq!(quote_identifier("App\"; drop table users; --"), "\"App\"\"; drop table users; --\"");
    }

    #[test]
    fn the_role_comes_from_db_application_role_else_the_application_secret() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, v)| (*v).to_owned())
        };
        assert_eq!(
            ApplicationRole::from_lookup(vars(&[
                ("DB_APPLICATION_ROLE", "app"),
                ("DB_APPLICATION_SECRET_ARN", "a")
            ])),
            ApplicationRole::Named("app".into())
        );
        assert_eq!(
            ApplicationRole::from_lookup(vars(&[("DB_APPLICATION_SECRET_ARN", "arn:app")])),
            ApplicationRole::FromSecret("arn:app".into())
        );
        assert_eq!(
            ApplicationRole::from_lookup(vars(&[("DB_APPLICATION_ROLE", " ")])),
            ApplicationRole::None
        );
    }

    #[test]
    fn only_events_out_false_turns_the_outbox_off() {
        let with = |value: Option<&'static str>| {
            EventsOut::from_lookup(move |name| {
                (name == "EVENTS_OUT").then_some(value).flatten().map(str::to_owned)
            })
        };
        assert_eq!(with(Some("false")), EventsOut::Off);
        assert_eq!(with(Some(" false ")), EventsOut::Off);
        assert_eq!(with(Some("true")), EventsOut::On);
        assert_eq!(with(None), EventsOut::On);
        assert_eq!(with(Some("no")), EventsOut::On, "a typo keeps events flowing");
    }

    fn update_for(version: Option<&str>) -> Request {
        let mut properties = json!({"ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:m:live"});
        if let Some(version) = version {
            properties[CODE_VERSION_PROPERTY] = json!(version);
        }
        serde_json::from_value(json!({
            "RequestType": "Update", "ResponseURL": "https://s3.test/x", "StackId": "s", "RequestId": "r",
            "LogicalResourceId": "Migration", "PhysicalResourceId": PHYSICAL_ID,
            "ResourceProperties": properties,
        }))
        .unwrap()
    }

    #[test]
    fn a_request_for_another_published_version_is_a_rollback_and_changes_nothing() {
        let v7 = "arn:aws:lambda:eu-west-1:123456789012:function:m:7";

        assert!(!is_for_other_code(&update_for(Some(v7)), "7"));
        assert!(is_for_other_code(&update_for(Some(v7)), "8"));
        assert!(!is_for_other_code(&update_for(Some(v7)), "$LATEST"), "unknown here: migrate");
        assert!(!is_for_other_code(&update_for(None), "8"), "unknown there: migrate");
    }
}
