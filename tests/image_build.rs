//! Image builds in jobs without a privileged runner: a job tagged `build-images` (the recipe in
//! docs/configuration.md: its project's kept volume at /var/lib/containers, no podman argument)
//! builds an image from a Containerfile with buildah in root's Podman; the next job of the same
//! project reuses the layer, another project's job does not see it, and `pogo gc` removes the
//! volume. The rootless twin is in tests/rootless.rs.

use crate::common::*;

#[test]
fn a_build_images_job_builds_an_image_and_the_next_job_of_its_project_reuses_the_layer() {
    require_podman!();
    if !buildah_image_ready(&PodmanCmd { as_user: None }, "root") {
        return;
    }
    let env = TestEnv::new(&image_build_config(&PodmanCmd { as_user: None }));
    let mut driver = env.driver();
    let runner = format!("pogoib{}", unique_id());
    driver.runner_short_token = runner.clone();

    let first = image_build_job(&env, &[BUILD_IMAGES_TAG]);
    let r = env.run_with(&driver, &first, None);
    assert_built_an_image(&r, false);
    assert!(
        plain_log(&r).contains("created the project volume pogo-project-"),
        "{}",
        r.log
    );

    let mut second = image_build_job(&env, &[BUILD_IMAGES_TAG]);
    second.project_path.clone_from(&first.project_path);
    let r = env.run_with(&driver, &second, None);
    assert_built_an_image(&r, true);

    // another project's job starts from its own, empty storage
    let other = image_build_job(&env, &[BUILD_IMAGES_TAG]);
    let r = env.run_with(&driver, &other, None);
    assert_built_an_image(&r, false);
    env.assert_no_leftovers();

    // cleanup keeps the volumes (one per project); gc removes them once unused long enough
    let volumes = project_volumes_of(&env, &runner);
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    let out = pogo_gc(&env, &["--runner", &runner]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        project_volumes_of(&env, &runner).len(),
        2,
        "7 days are not over"
    );
    let out = pogo_gc(&env, &["--runner", &runner, "--older-than", "0s"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed project volume pogo-project-"),
        "{out:?}"
    );
    assert!(project_volumes_of(&env, &runner).is_empty());
}
