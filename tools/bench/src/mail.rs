//! Section 12: whether `POST /auth/password/forgot` tells a stranger that an address has an
//! account. The forgot-password function at its template size and CPU share, mailing through
//! the real SDK to the local SES (moto); known and unknown addresses asked for in turns, each
//! known one once (so every one of them sends), timed from the client.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::ensure;
use serde_json::json;

use crate::stats::{Samples, ms};
use crate::{Driver, PASSWORD, Setup, Source, Spares, emulator_with, progress};

/// The section, measured with `samples` known and as many unknown addresses.
pub(crate) async fn section(setup: &Setup, binaries: &Path, samples: usize) -> anyhow::Result<String> {
    progress(format!("forgot password: {samples} known and {samples} unknown addresses"));
    test_support::verify_mail_identity().await;
    let ses = std::env::var("AWS_ENDPOINT_URL_SESV2")?;
    let emulator = emulator_with(setup, binaries, Source::Environment, 1, None, |config| {
        // Each function at its template size and that size's CPU share, as deployed.
        config.sandbox_limits = true;
        let env = &mut config.env_overrides;
        env.set_for_all("AWS_ENDPOINT_URL_SESV2", ses);
        env.set_for_all("AWS_ACCESS_KEY_ID", "moto");
        env.set_for_all("AWS_SECRET_ACCESS_KEY", "moto");
        env.set_for_all("MAIL_FROM", test_support::MAIL_FROM);
        env.set_for_all("APP_URL", test_support::APP_URL);
        env.set_for_all("MAIL_HOURLY_LIMIT", "1000000");
    })
    .await?;
    let limited = emulator.limits_sandboxes();
    let driver = Driver::new(emulator, &setup.email, std::sync::Arc::new(Spares::new())).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    // The first five warm the sandbox up: one serving traffic has timed its sends.
    let known: Vec<String> = (0..samples + 5).map(|n| format!("known-{run}-{n}@example.com")).collect();
    for email in &known {
        let (status, body, _) =
            driver.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await?;
        ensure!(status == 201, "signing up {email}: {status} {body}");
    }
    let forgot = |email: String| {
        let driver = &driver;
        async move {
            let (status, body, elapsed) =
                driver.post("/auth/password/forgot", json!({"email": email})).await?;
            ensure!(status == 202, "forgot {email}: {status} {body}");
            anyhow::Ok(elapsed)
        }
    };
    for (n, email) in known[..5].iter().enumerate() {
        forgot(email.clone()).await?;
        forgot(format!("warm-{run}-{n}@example.com")).await?;
    }
    let (mut to_known, mut to_unknown) = (Vec::new(), Vec::new());
    for (n, email) in known[5..].iter().enumerate() {
        to_known.push(forgot(email.clone()).await?);
        to_unknown.push(forgot(format!("unknown-{run}-{n}@example.com")).await?);
    }
    driver.emulator.shutdown_all().await;
    Ok(report(&Samples::new(to_known), &Samples::new(to_unknown), limited))
}

/// The share of (known, unknown) pairs in which the unknown answer came later: 0.5 when the
/// two times are drawn alike, 0 or 1 when one always answers first (the area under the ROC
/// curve of a guesser that calls the slower answer "known").
fn overlap(known: &Samples, unknown: &Samples) -> f64 {
    let mut later = 0.0;
    for k in known.values() {
        for u in unknown.values() {
            later += if u > k {
                1.0
            } else if u == k {
                0.5
            } else {
                0.0
            };
        }
    }
    later / (known.len() * unknown.len()).max(1) as f64
}

fn report(known: &Samples, unknown: &Samples, limited: bool) -> String {
    let mut out = String::new();
    let row = |name: &str, samples: &Samples| {
        format!(
            "| {name} | {} | {} | {} | {} | {} |\n",
            samples.len(),
            ms(samples.percentile(0.1)),
            ms(samples.median()),
            ms(samples.percentile(0.9)),
            ms(samples.percentile(0.99)),
        )
    };
    let _ = writeln!(out, "## 12. Forgot password: what its timing tells a stranger\n");
    let _ = writeln!(
        out,
        "`POST /auth/password/forgot` through the emulator to the release function at its template \
         size{}, mailing through the AWS SDK to moto's SES. Known addresses (each asked for once, \
         so each one sends a mail) and unknown ones in turns, timed at the client. An unknown \
         address runs the same statement, then lasts as long as one of this sandbox's last 32 \
         requests that sent did, drawn at random (`Mailer::pace_from`).\n",
        if limited {
            " and its CPU share"
        } else {
            " (unthrottled: the emulator could apply no limits here)"
        },
    );
    let _ = writeln!(out, "| address | requests | p10 ms | p50 ms | p90 ms | p99 ms |");
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    out.push_str(&row("with an account (a mail is sent)", known));
    out.push_str(&row("without one (nothing is sent)", unknown));
    let _ = writeln!(
        out,
        "\nThe chance that an unknown address's answer comes later than a known one's: {:.2} \
         (0.50: the times tell nothing; 0 or 1: they tell everything). p50 difference: {} ms.",
        overlap(known, unknown),
        ms((unknown.median() - known.median()).abs()),
    );
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_overlap_is_a_half_for_alike_times_and_zero_or_one_for_apart() {
        let a = Samples::new((0..10).map(Duration::from_millis));
        let later = Samples::new((20..30).map(Duration::from_millis));
        assert_eq!(overlap(&a, &a), 0.5);
        assert_eq!(overlap(&a, &later), 1.0);
        assert_eq!(overlap(&later, &a), 0.0);
    }
}
