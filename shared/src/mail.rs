//! Mail: the verification and password-reset links, sent through Amazon SES (the v2
//! `SendEmail`, one raw MIME message with a plain-text and an HTML part, written by mail-builder,
//! links built from `APP_URL`), from `MAIL_FROM`. Where `MAIL_OUTBOX_DIR` is set (`make run`), every message is
//! also written there as one `.eml` file, named so that the newest sorts last.
//!
//! A send never fails a request: SES's refusal (or no answer) is returned as
//! [`Delivery::Failed`] with its error code, for the caller to log and count. Nothing here
//! knows of users or tokens beyond the link it writes.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::domain::{MailKind, SecurityChange};

/// Where mail comes from and what its links open (`MAIL_FROM`, `APP_URL`, ...).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The `From` header: an address of the verified SES identity, with or without a name.
    pub from: String,
    /// The web app's base URL, without a trailing slash: links open `{app_url}/verify-email`
    /// and `{app_url}/reset-password`, with `#token=...`.
    pub app_url: String,
    /// Mails sent per clock hour across every sandbox, at most (`MAIL_HOURLY_LIMIT`).
    pub hourly_limit: u32,
    /// A folder that receives a copy of every message as an `.eml` file (`MAIL_OUTBOX_DIR`).
    pub outbox: Option<PathBuf>,
}

/// What became of one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// SES accepted it.
    Sent,
    /// The function has no `MAIL_FROM`: nothing was sent.
    NotConfigured,
    /// SES refused it, or did not answer: its error code (`MessageRejected`,
    /// `SendingPausedException`, ...), or the SDK's kind of failure (`TimeoutError`, ...).
    Failed { code: String },
}

/// One message, before it is written as MIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: &'static str,
    pub text: String,
    pub html: String,
}

/// How long a sending request is assumed to take before this sandbox has timed one: SES
/// answers a `SendEmail` in tens of milliseconds in its region. Replaced by the sandbox's own
/// from the first one on.
const ASSUMED_SEND: Duration = Duration::from_millis(60);

/// Sends the links of one function (or sends nothing when unconfigured).
pub struct Mailer {
    config: Option<MailConfig>,
    client: OnceCell<Client>,
    pacing: Pacing,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `config`; `None` sends nothing ([`Delivery::NotConfigured`]).
    pub fn new(config: Option<MailConfig>) -> Self {
        Self { config, client: OnceCell::new(), pacing: Pacing::new(ASSUMED_SEND) }
    }

    /// The global hourly cap (the default when unconfigured, where nothing is sent anyway).
    pub fn hourly_limit(&self) -> u32 {
        self.config.as_ref().map_or(DEFAULT_HOURLY_LIMIT, |config| config.hourly_limit)
    }

    /// Sends `letter`, whose link carries `token`, to `to`.
    pub async fn send(&self, letter: impl Into<Letter>, to: &str, token: &str) -> Delivery {
        let letter = letter.into();
        let Some(config) = &self.config else { return Delivery::NotConfigured };
        let message = compose(letter, &config.app_url, token);
        let sender = Sender::parse(&config.from);
        let mime = match mime(&sender, to, &message, OffsetDateTime::now_utc()) {
            Ok(mime) => mime,
            Err(error) => return Delivery::Failed { code: format!("MimeError: {error}") },
        };
        if let Some(outbox) = &config.outbox
            && let Err(error) = write_to_outbox(outbox, letter, &mime)
        {
            tracing::warn!(error = ?error, outbox = %outbox.display(), "could not write the mail's local copy");
        }
        let client =
            self.client.get_or_init(|| async { Client::new(&crate::secrets::sdk_config().await) }).await;
        // The sender named apart from the message, so that an `ses:FromAddress` condition in the
        // function's policy applies to raw sends too.
        let sent = client
            .send_email()
            .from_email_address(sender.address)
            .destination(Destination::builder().to_addresses(to).build())
            .content(
                EmailContent::builder()
                    .raw(
                        RawMessage::builder()
                            .data(Blob::new(mime))
                            .build()
                            .expect("the raw message has its data"),
                    )
                    .build(),
            )
            .send()
            .await;
        match sent {
            Ok(_) => Delivery::Sent,
            Err(error) => Delivery::Failed { code: error_code(&error) },
        }
    }

    /// Records how long a request that sent a mail took, from `started` (its decision and its
    /// send), for [`Self::pace_from`].
    pub fn record_sending_request(&self, started: Instant) {
        self.pacing.record(started.elapsed());
    }

    /// Waits until as long after `started` as one of this sandbox's recent sending requests
    /// took, drawn at random, so that a request that sends nothing (an unknown address, a
    /// limit) ends when a sending one would have: same time class, same spread.
    pub async fn pace_from(&self, started: Instant) {
        // The timer wakes on whole milliseconds, after its deadline: what it overslept before is
        // taken off the wait, so the request ends at the drawn time on average.
        let target = self.pacing.typical().saturating_sub(started.elapsed());
        let asked = target.saturating_sub(self.pacing.oversleep());
        let slept = Instant::now();
        tokio::time::sleep(asked).await;
        self.pacing.record_oversleep(slept.elapsed().saturating_sub(asked));
    }
}

/// `MAIL_HOURLY_LIMIT` when it is not set.
pub const DEFAULT_HOURLY_LIMIT: u32 = 1_000;

/// SES's error code, or the SDK's name for a failure that never reached an answer.
fn error_code<E: aws_sdk_sesv2::error::ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ServiceError(_) => error.code().unwrap_or("Unknown").to_owned(),
        SdkError::TimeoutError(_) => "TimeoutError".to_owned(),
        SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        SdkError::ResponseError(_) => "ResponseError".to_owned(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
        _ => "Unknown".to_owned(),
    }
}

/// How long this sandbox's last sending requests took ([`PACING_SAMPLES`] of them): a request
/// that sends nothing lasts as long as one of them, picked at random, so its time follows the
/// same distribution, spread included, and not only its mean.
struct Pacing {
    assumed: Duration,
    recent: Mutex<VecDeque<Duration>>,
    /// How much later than asked the timer wakes, a running mean in microseconds (weight 1/8).
    oversleep_micros: AtomicU64,
}

/// The sends [`Pacing`] draws from.
const PACING_SAMPLES: usize = 32;

impl Pacing {
    fn new(assumed: Duration) -> Self {
        Self {
            assumed,
            recent: Mutex::new(VecDeque::with_capacity(PACING_SAMPLES)),
            oversleep_micros: AtomicU64::new(0),
        }
    }

    fn oversleep(&self) -> Duration {
        Duration::from_micros(self.oversleep_micros.load(Ordering::Relaxed))
    }

    fn record_oversleep(&self, late: Duration) {
        // Concurrent records may start from the same mean; either result is as good.
        let mean = self.oversleep_micros.load(Ordering::Relaxed);
        let late = late.as_micros().min(u128::from(u32::MAX)) as u64;
        self.oversleep_micros.store(mean - mean / 8 + late / 8, Ordering::Relaxed);
    }

    fn record(&self, took: Duration) {
        let mut recent = self.recent.lock().expect("the pacing lock");
        if recent.len() == PACING_SAMPLES {
            recent.pop_front();
        }
        recent.push_back(took);
    }

    /// One of the recent sends' durations, at random; the assumption before the first send.
    fn typical(&self) -> Duration {
        let recent = self.recent.lock().expect("the pacing lock");
        let mut random = [0u8; 4];
        if recent.is_empty() || aws_lc_rs::rand::fill(&mut random).is_err() {
            return recent.back().copied().unwrap_or(self.assumed);
        }
        recent[u32::from_le_bytes(random) as usize % recent.len()]
    }
}

/// What a mail says: a link of its kind, or, to an address that already has an account when
/// someone signs up with it, that account's reset link with words that say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    Link(MailKind),
    AccountExists,
    /// A change to the second factor, told to its owner with a link that undoes it.
    SecurityChange(SecurityChange),
}

impl Letter {
    /// The kind of the mail link the letter carries (its token's kind in `mail_tokens`); `None`
    /// for a security notice, whose token is the change's own.
    pub fn kind(self) -> Option<MailKind> {
        match self {
            Letter::Link(kind) => Some(kind),
            Letter::AccountExists => Some(MailKind::ResetPassword),
            Letter::SecurityChange(_) => None,
        }
    }

    /// The letter's name, in its local copy's file name and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Letter::Link(MailKind::VerifyEmail) => "verify-email",
            Letter::Link(MailKind::ResetPassword) => "reset-password",
            Letter::AccountExists => "account-exists",
            Letter::SecurityChange(SecurityChange::FactorAdded) => "factor-added",
            Letter::SecurityChange(SecurityChange::FactorRemoved) => "factor-removed",
            Letter::SecurityChange(SecurityChange::RecoveryCodesRenewed) => "recovery-codes-renewed",
            Letter::SecurityChange(SecurityChange::PasskeyAdded) => "passkey-added",
            Letter::SecurityChange(SecurityChange::PasskeyRemoved) => "passkey-removed",
        }
    }
}

impl From<MailKind> for Letter {
    fn from(kind: MailKind) -> Self {
        Letter::Link(kind)
    }
}

/// The subject and the two bodies of `letter`, its link carrying `token`.
pub fn compose(letter: impl Into<Letter>, app_url: &str, token: &str) -> Message {
    let letter = letter.into();
    let (subject, page, action, lifetime) = match letter {
        Letter::Link(MailKind::VerifyEmail) => (
            "Verify your email address",
            "verify-email",
            "Open this link to confirm this email address:",
            "24 hours",
        ),
        Letter::Link(MailKind::ResetPassword) => {
            ("Reset your password", "reset-password", "Open this link to choose a new password:", "1 hour")
        }
        Letter::AccountExists => (
            "You already have an account",
            "reset-password",
            "Someone asked to sign up with this email address, which already has an account. To \
             sign in, use its password; if you forgot it, open this link to choose a new one:",
            "1 hour",
        ),
        Letter::SecurityChange(change) => (
            match change {
                SecurityChange::FactorAdded => "A second factor was added to your account",
                SecurityChange::FactorRemoved => "The second factor of your account was removed",
                SecurityChange::RecoveryCodesRenewed => "Your recovery codes were replaced",
                SecurityChange::PasskeyAdded => "A passkey was added to your account",
                SecurityChange::PasskeyRemoved => "A passkey was removed from your account",
            },
            "undo-change",
            match change {
                SecurityChange::FactorAdded => {
                    "An authenticator app was just added to your account as its second factor. If \
                     this wasn't you, open this link: it removes it and signs every device out. \
                     Then reset your password."
                }
                SecurityChange::FactorRemoved => {
                    "The authenticator app of your account was just removed. If this wasn't you, \
                     open this link: it puts it back and signs every device out. Then reset your \
                     password."
                }
                SecurityChange::RecoveryCodesRenewed => {
                    "The recovery codes of your account were just replaced by new ones. If this \
                     wasn't you, open this link: it puts the old ones back and signs every device \
                     out. Then reset your password."
                }
                SecurityChange::PasskeyAdded => {
                    "A passkey was just added to your account: it signs in without a password. If \
                     this wasn't you, open this link: it removes it and signs every device out. \
                     Then reset your password."
                }
                SecurityChange::PasskeyRemoved => {
                    "A passkey was just removed from your account. If this wasn't you, open this \
                     link: it puts it back and signs every device out (a passkey added in the last \
                     seven days is removed instead: add it again). Then reset your password."
                }
            },
            "7 days",
        ),
    };
    // The token in the fragment: a browser never sends it to the app's server, so neither the
    // server's nor a CDN's logs hold it, and no Referer header carries it to another site.
    let link = format!("{app_url}/{page}#token={token}");
    let text = format!(
        "Hello,\r\n\r\n{action}\r\n\r\n{link}\r\n\r\nThe link works once and \
         expires in {lifetime}. If you did not ask for it, ignore this mail: nothing changes.\r\n"
    );
    let href = escape_html(&link);
    let html = format!(
        "<!doctype html>\r\n<html><body>\r\n<p>Hello,</p>\r\n<p>{action}</p>\r\n\
         <p><a href=\"{href}\">{href}</a></p>\r\n<p>The link works once and expires in {lifetime}. \
         If you did not ask for it, ignore this mail: nothing changes.</p>\r\n</body></html>\r\n"
    );
    Message { subject, text, html }
}

fn escape_html(raw: &str) -> String {
    raw.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `MAIL_FROM` taken apart: `Name <address>`, `"Name" <address>` or a bare address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender<'a> {
    pub name: Option<&'a str>,
    pub address: &'a str,
}

impl<'a> Sender<'a> {
    pub fn parse(from: &'a str) -> Self {
        match from.trim().rsplit_once('<') {
            Some((name, address)) if address.ends_with('>') => {
                let name = name.trim().trim_matches('"').trim();
                Self { name: (!name.is_empty()).then_some(name), address: &address[..address.len() - 1] }
            }
            _ => Self { name: None, address: from.trim() },
        }
    }

    /// The domain of the address (the right-hand side of a Message-ID).
    fn domain(&self) -> &'a str {
        self.address.rsplit_once('@').map_or("localhost", |(_, domain)| domain)
    }
}

/// The message as `multipart/alternative` MIME, the plain-text part first, written by
/// mail-builder: headers that are not ASCII are RFC 2047-encoded, and a body that is not
/// short-lined ASCII gets a transfer encoding (quoted-printable or base64), so any display
/// name, language or `APP_URL` length makes a conforming message.
pub fn mime(
    from: &Sender<'_>,
    to: &str,
    message: &Message,
    date: OffsetDateTime,
) -> std::io::Result<Vec<u8>> {
    let sender: Address<'_> = match from.name {
        Some(name) => (name, from.address).into(),
        None => from.address.into(),
    };
    MessageBuilder::new()
        .from(sender)
        .to(to)
        .subject(message.subject)
        .date(date.unix_timestamp())
        .message_id(format!("{}@{}", uuid::Uuid::new_v4().simple(), from.domain()))
        .text_body(message.text.as_str())
        .html_body(message.html.as_str())
        .write_to_vec()
}

/// Writes `mime` into `outbox` as `<UTC time>-<kind>-<random>.eml`, whole or not at all (a
/// temporary name, then a rename): names sort by time, so the newest message sorts last.
fn write_to_outbox(outbox: &Path, letter: Letter, mime: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(outbox)?;
    let now = OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:09}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.nanosecond()
    );
    let name = format!("{stamp}-{}-{}.eml", letter.name(), &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let partial = outbox.join(format!(".{name}.partial"));
    std::fs::write(&partial, mime)?;
    std::fs::rename(&partial, outbox.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as a mail client reads it: (from's name, subject, text body, HTML body).
    fn read(mime: &[u8]) -> (Option<String>, String, String, String) {
        let parsed = mail_parser::MessageParser::default().parse(mime).expect("a MIME message");
        let from = parsed.from().and_then(|from| from.first()).and_then(|a| a.name()).map(str::to_owned);
        let subject = parsed.subject().unwrap_or_default().to_owned();
        let text = parsed.body_text(0).unwrap_or_default().into_owned();
        let html = parsed.body_html(0).unwrap_or_default().into_owned();
        (from, subject, text, html)
    }

    fn date() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn a_link_mail_has_a_text_and_an_html_part_with_the_same_link() {
        let message = compose(MailKind::ResetPassword, "https://app.example.com", "tok-EN_1");
        let sender = Sender::parse("Auth <no-reply@example.com>");
        let mime = mime(&sender, "a@b.c", &message, date()).unwrap();

        let (from, subject, text, html) = read(&mime);
        assert_eq!(from.as_deref(), Some("Auth"));
        assert_eq!(subject, "Reset your password");
        let link = "https://app.example.com/reset-password#token=tok-EN_1";
        assert!(text.contains(link), "{text}");
        assert_eq!(html.matches(link).count(), 2, "href and text: {html}");
        let raw = String::from_utf8(mime).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(
            raw.find("text/plain").unwrap() < raw.find("text/html").unwrap(),
            "the plain-text part comes first"
        );
        assert!(raw.contains("Message-ID: <") && raw.contains("@example.com>"), "{raw}");
    }

    #[test]
    fn a_name_a_language_or_an_app_url_of_any_length_still_makes_a_conforming_message() {
        let long_url = format!("https://app.example.com/{}", "a-very-long-path/".repeat(8));
        let mut message = compose(MailKind::VerifyEmail, &long_url, &"t".repeat(43));
        message.text = format!("Grüße — {}", message.text);
        let sender = Sender::parse("\"Équipe Auth\" <no-reply@example.com>");
        let mime = mime(&sender, "a@b.c", &message, date()).unwrap();

        assert!(mime.is_ascii(), "8-bit content is encoded, never sent raw");
        let raw = String::from_utf8(mime.clone()).unwrap();
        assert!(raw.split("\r\n").all(|line| line.len() <= 78), "no line over 78 characters:\n{raw}");
        let (from, _, text, html) = read(&mime);
        assert_eq!(from.as_deref(), Some("Équipe Auth"));
        assert!(text.starts_with("Grüße — "), "{text}");
        let link = format!("{long_url}/verify-email#token={}", "t".repeat(43));
        assert!(text.contains(&link) && html.contains(&link), "the link survives the encoding");
    }

    #[test]
    fn mail_from_is_taken_apart_into_name_and_address() {
        assert_eq!(Sender::parse("Auth <a@b.c>"), Sender { name: Some("Auth"), address: "a@b.c" });
        assert_eq!(Sender::parse("\"A, B\" <a@b.c>"), Sender { name: Some("A, B"), address: "a@b.c" });
        assert_eq!(Sender::parse(" a@b.c "), Sender { name: None, address: "a@b.c" });
        assert_eq!(Sender::parse("<a@b.c>"), Sender { name: None, address: "a@b.c" });
    }

    #[test]
    fn the_token_travels_in_the_links_fragment_never_its_query() {
        for kind in [MailKind::VerifyEmail, MailKind::ResetPassword] {
            let message = compose(kind, "https://app.example.com", "tok");
            assert!(message.text.contains("#token=tok"), "{}", message.text);
            assert!(!message.text.contains("?token") && !message.html.contains("?token"), "{}", message.html);
        }
    }

    #[test]
    fn links_are_escaped_in_html() {
        let message = compose(MailKind::VerifyEmail, "https://app.example.com/a?b=1&c=\"2\"", "t");
        assert!(
            message.html.contains("https://app.example.com/a?b=1&amp;c=&quot;2&quot;/verify-email#token=t")
        );
        assert!(!message.html.contains("c=\"2\""));
    }

    #[test]
    fn the_outbox_names_sort_by_time_and_hold_whole_messages() {
        let outbox = std::env::temp_dir().join(format!("outbox-{}", uuid::Uuid::new_v4().simple()));
        for n in 0..3 {
            write_to_outbox(&outbox, Letter::Link(MailKind::VerifyEmail), format!("message {n}").as_bytes())
                .unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(&outbox)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let bodies: Vec<String> =
            names.iter().map(|n| std::fs::read_to_string(outbox.join(n)).unwrap()).collect();
        std::fs::remove_dir_all(&outbox).unwrap();

        assert!(names.iter().all(|n| n.ends_with(".eml") && n.contains("-verify-email-")), "{names:?}");
        assert_eq!(bodies, ["message 0", "message 1", "message 2"], "in the order written");
    }

    #[test]
    fn pacing_draws_from_the_recent_sends_once_there_are_any() {
        let pacing = Pacing::new(Duration::from_millis(60));
        assert_eq!(pacing.typical(), Duration::from_millis(60), "the assumption, before any send");
        for n in 0..PACING_SAMPLES as u64 * 2 {
            pacing.record(Duration::from_millis(n));
        }
        let drawn: std::collections::BTreeSet<Duration> = (0..500).map(|_| pacing.typical()).collect();
        let recent = PACING_SAMPLES as u64..PACING_SAMPLES as u64 * 2;
        assert!(
            drawn.iter().all(|d| recent.contains(&(d.as_millis() as u64))),
            "only the last 32: {drawn:?}"
        );
        assert!(drawn.len() > PACING_SAMPLES / 2, "spread over them, not one value: {drawn:?}");
    }
}
