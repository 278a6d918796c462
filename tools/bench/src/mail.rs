//! Section 12: whether an anonymous request tells a stranger that an address has an account.
//! Every function whose sample names an account's address and no token, and answers an unknown
//! address with the same status, at its template size and CPU share, mailing through the real
//! SDK to the local SES (moto): known and unknown addresses in turns, each known one a fresh
//! account (so every one of them sends), timed from the client.

use std::fmt::Write as _;

use anyhow::ensure;

use crate::driver::{Call, Driver, Serve, Setup, Source, emulator};
use crate::functions::Function;
use crate::plan::{Args, progress};
use crate::stats::{Samples, ms};
use test_support::samples::{ACCESS_TOKEN, EMAIL, fresh_email};

/// The section, measured with `plan.mail` known and as many unknown addresses per function.
pub async fn section(setup: &Setup, args: &Args, functions: &[Function]) -> anyhow::Result<String> {
    let samples = args.plan.mail;
    test_support::verify_mail_identity().await;
    let ses = std::env::var("AWS_ENDPOINT_URL_SESV2")?;
    let template = args.template();
    let serve = Serve {
        template: &template,
        binaries: &args.binaries,
        source: Source::Environment,
        sandboxes: 1,
        memory_mb: None,
    };
    let emulator = emulator(setup, serve, |config| {
        // Each function at its template size and that size's CPU share, as deployed.
        config.sandbox_limits = true;
        config.parameters.extend([
            ("MailFrom".to_owned(), test_support::MAIL_FROM.to_owned()),
            ("MailIdentity".to_owned(), test_support::MAIL_DOMAIN.to_owned()),
            ("AppUrl".to_owned(), test_support::APP_URL.to_owned()),
            ("MailHourlyLimit".to_owned(), "1000000".to_owned()),
        ]);
        let env = &mut config.env_overrides;
        env.set_for_all("AWS_ENDPOINT_URL_SESV2", ses);
        env.set_for_all("AWS_ACCESS_KEY_ID", "moto");
        env.set_for_all("AWS_SECRET_ACCESS_KEY", "moto");
    })
    .await?;
    let limited = emulator.limits_sandboxes();
    let driver = Driver::new(emulator, setup.fixture.clone());
    let mut out = String::new();
    writeln!(out, "## 12. What an anonymous request's timing tells a stranger\n")?;
    writeln!(
        out,
        "Every function whose sample request names an account's address and carries no token, \
         through the emulator to the release function at its template size{}, mailing through the AWS \
         SDK to moto's SES. Known addresses (each a fresh account, so each one sends what a user \
         would get) and unknown ones in turns, {samples} of each after five of each to warm the \
         sandbox, timed at the client. *Later*: the chance that an unknown address's answer comes \
         later than a known one's (0.50: the times tell nothing; 0 or 1: they tell everything). A \
         function whose sample proves the account (login's carries its password) answers an \
         unknown address otherwise by design, and is left out: its refusals are compared in the \
         tests, not here.\n",
        if limited {
            " and its CPU share"
        } else {
            " (unthrottled: the emulator could apply no limits here)"
        },
    )?;
    writeln!(out, "| function | address | p10 | p50 | p90 | p99 | later |")?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for function in functions.iter().filter(|f| f.sample.contains(EMAIL) && !f.sample.contains(ACCESS_TOKEN))
    {
        progress(format!("{}: {samples} known and {samples} unknown addresses", function.label));
        let unknown_sample =
            || Function { sample: function.sample.replace(EMAIL, &fresh_email()), ..function.clone() };
        let (known_status, unknown_status) =
            (status_of(&driver, function).await?, status_of(&driver, &unknown_sample()).await?);
        if known_status != unknown_status {
            writeln!(
                out,
                "| {} | known {known_status}, unknown {unknown_status} | – | – | – | – | – |",
                function.binary
            )?;
            continue;
        }
        for _ in 0..5 {
            driver.call(function).await?;
            driver.call(&unknown_sample()).await?;
        }
        let (mut to_known, mut to_unknown) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            to_known.push(driver.call(function).await?);
            to_unknown.push(driver.call(&unknown_sample()).await?);
        }
        let (known, unknown) = (Samples::new(to_known), Samples::new(to_unknown));
        let later = overlap(&known, &unknown);
        for (label, samples) in [("with an account", &known), ("without one", &unknown)] {
            writeln!(
                out,
                "| {} | {label} | {} | {} | {} | {} | {later:.2} |",
                function.binary,
                ms(samples.percentile(0.1)),
                ms(samples.median()),
                ms(samples.percentile(0.9)),
                ms(samples.percentile(0.99)),
            )?;
        }
    }
    driver.emulator.shutdown_all().await;
    Ok(out)
}

/// The status `function`'s filled sample gets through the front door.
async fn status_of(driver: &Driver, function: &Function) -> anyhow::Result<u16> {
    let Call::Http(request) = driver.prepare(function).await? else {
        anyhow::bail!("{} is not called through the front door", function.label);
    };
    let method = http::Method::from_bytes(request.method.as_bytes())?;
    let headers: Vec<(&str, &str)> = request.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (status, _, _) = driver.request(method, &request.path, &headers, request.body).await?;
    ensure!(status < 500, "{} answered {status}", function.label);
    Ok(status)
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
