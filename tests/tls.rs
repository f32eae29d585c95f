//! GitLab behind a private CA, as many self-hosted instances are: the executor trusts what
//! gitlab-runner trusts — the runner's `tls-ca-file` (handed to pogo as the file variable
//! `CI_SERVER_TLS_CA_FILE`) and the machine's CA store — and says how to fix it otherwise.

use crate::common::*;
use pogo::driver::{Outcome, Variable};

/// A job whose GitLab API is the fake GitLab behind HTTPS with a private CA.
fn https_job(env: &TestEnv, front: &TlsFront, script: &[&str]) -> pogo::driver::Job {
    let mut job = env.job(&["tls"], script);
    job.api_url = front.api_url();
    job
}

#[test]
fn a_gitlab_behind_a_private_ca_is_trusted_through_the_runners_tls_ca_file() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let front = TlsFront::start(env.gitlab.port());
    let mut job = https_job(&env, &front, &["echo tls-ok"]);
    job.variables.push(Variable::file(
        "CI_SERVER_TLS_CA_FILE",
        front.ca_pem.clone(),
    ));
    let r = env.run(&job);
    assert_success(&r);
    assert!(plain_log(&r).contains("\ntls-ok\n"), "{}", r.log);
    assert!(
        env.gitlab.requests(&job.token) >= 1,
        "the job's tags were asked for over HTTPS"
    );
    env.assert_no_leftovers();
}

#[test]
fn an_untrusted_gitlab_certificate_is_a_system_failure_that_says_how_to_trust_it() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let front = TlsFront::start(env.gitlab.port());
    let job = https_job(&env, &front, &["echo never-runs"]);
    let r = env.run(&job);
    assert!(
        matches!(r.outcome, Outcome::SystemFailure { .. }),
        "{:?}\n{}",
        r.outcome,
        r.log
    );
    let log = plain_log(&r);
    assert!(log.contains("certificate"), "{log}");
    assert!(log.contains("is not trusted"), "{log}");
    assert!(log.contains("tls-ca-file"), "{log}");
    assert!(!log.contains("never-runs\n"), "{log}");
    env.assert_no_leftovers();
}

#[test]
fn a_ca_in_the_machines_store_is_trusted_as_gitlab_runner_trusts_it() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let front = TlsFront::start(env.gitlab.port());
    let store = env.dir.path().join("ca-store.pem");
    std::fs::write(&store, &front.ca_pem).unwrap();
    let job = https_job(&env, &front, &["echo store-ok"]);
    let mut driver = env.driver();
    // what update-ca-certificates maintains; SSL_CERT_FILE points the store elsewhere
    driver
        .env
        .push(("SSL_CERT_FILE".to_string(), store.display().to_string()));
    let r = env.run_with(&driver, &job, None);
    assert_success(&r);
    assert!(plain_log(&r).contains("\nstore-ok\n"), "{}", r.log);
    env.assert_no_leftovers();
}

#[test]
fn a_tls_ca_file_without_a_certificate_says_to_fix_tls_ca_file() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig::default());
    let front = TlsFront::start(env.gitlab.port());
    let mut job = https_job(&env, &front, &["echo never-runs"]);
    job.variables.push(Variable::file(
        "CI_SERVER_TLS_CA_FILE",
        "this is not a certificate\n",
    ));
    let r = env.run(&job);
    assert!(
        matches!(r.outcome, Outcome::SystemFailure { .. }),
        "{:?}",
        r.outcome
    );
    let log = plain_log(&r);
    assert!(log.contains("CI_SERVER_TLS_CA_FILE"), "{log}");
    assert!(log.contains("no PEM certificate"), "{log}");
    env.assert_no_leftovers();
}
