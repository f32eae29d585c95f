//! Many jobs at once, as with gitlab-runner's `concurrent = 8`.

use crate::common::*;
use pogo::driver::{Cache, CachePolicy};
use std::collections::HashSet;

#[test]
fn eight_concurrent_jobs_from_shared_and_separate_projects_all_pass_without_collisions() {
    require_podman!();
    let env = TestEnv::new(&PogoConfig {
        runner_binary: Some(runner_stand_in()),
        ..PogoConfig::default()
    });
    let shared_project = format!("pogo-test/shared{}", unique_id());
    let cache = Cache {
        key: "shared-key".into(),
        paths: vec!["vendor".into()],
        policy: CachePolicy::PullPush,
        ..Cache::default()
    };
    let mut jobs = Vec::new();
    for slot in 0..8u32 {
        let mut job = env.job(
            &[],
            &[
                "mkdir -p vendor",
                // enough data that interleaved writes of the archive would corrupt it
                "head -c 2000000 /dev/urandom > vendor/blob-$CI_JOB_ID",
                "echo slot-$CI_CONCURRENT_ID job-$CI_JOB_ID",
            ],
        );
        if slot < 4 {
            job.project_path = shared_project.clone();
            job.cache = vec![cache.clone()];
        }
        if slot == 7 {
            job.services = vec![httpd_service("web")];
            job.script.push("wget -qO- http://web/; echo".into());
        }
        let mut driver = env.driver();
        driver.concurrent_id = slot;
        jobs.push((driver, job));
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(driver, job)| s.spawn(|| env.run_with(driver, job, None)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let mut keys = HashSet::new();
    for ((driver, job), r) in jobs.iter().zip(&results) {
        assert_success(r);
        let log = plain_log(r);
        assert!(
            log.contains(&format!("\nslot-{} job-{}\n", driver.concurrent_id, job.id)),
            "{log}"
        );
        assert!(
            keys.insert(job_key(r).expect("job key")),
            "two jobs shared a name"
        );
    }
    assert!(plain_log(&results[7]).contains("\npogo-service-ok\n"));

    // the shared project's cache archive was written by 4 jobs at once and is intact
    let archive = env
        .cache_dir
        .join(&shared_project)
        .join("shared-key/cache.zip");
    let out = std::process::Command::new("tar")
        .arg("tzf")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "corrupt cache archive {}: {}",
        archive.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("vendor/blob-"), "{listing}");
    let leftovers: Vec<_> = std::fs::read_dir(archive.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary archives left: {leftovers:?}"
    );
    env.assert_no_leftovers();
}
