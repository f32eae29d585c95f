//! Image builds in jobs: the `build-images` recipe of docs/configuration.md, the buildah test
//! image, and the job that builds an image.

use super::*;

/// Debian + buildah (chroot isolation) + the busybox test image as an OCI archive at
/// [`BUILDAH_BASE_ARCHIVE`], built by scripts/setup-test-env.sh (root's and the rootless
/// user's storage).
pub const IMG_BUILDAH: &str = "localhost/pogo-test/buildah:latest";
pub const BUILDAH_BASE_ARCHIVE: &str = "/opt/pogo-test/busybox.oci.tar";
/// The tag of the recipe, and where it puts the project's kept volume.
pub const BUILD_IMAGES_TAG: &str = "build-images";
pub const IMAGE_STORAGE: &str = "/var/lib/containers";

/// `true` when [`IMG_BUILDAH`] is in `podman`'s storage (`who` says whose); skipped with a
/// message otherwise, except in CI.
pub fn buildah_image_ready(podman: &PodmanCmd, who: &str) -> bool {
    if podman.image_exists(IMG_BUILDAH) {
        return true;
    }
    assert!(
        !in_ci(),
        "{IMG_BUILDAH} missing in {who}'s storage in CI (scripts/setup-test-env.sh builds it)"
    );
    skipped(&format!(
        "{IMG_BUILDAH} missing in {who}'s storage (set up with `make test` as root)"
    ));
    false
}

/// The recipe's config entry for `podman`: jobs tagged `build-images` get their project's
/// kept volume at /var/lib/containers, and no podman argument at all; where podman's volumes
/// are on overlayfs (podman in a container, as the rootless user's in `make matrix`'s fresh
/// machines), overlay cannot be mounted on them again and the recipe adds `--device /dev/fuse`
/// for fuse-overlayfs (docs/configuration.md; `pogo doctor` says so).
pub fn image_build_config(podman: &PodmanCmd) -> PogoConfig {
    let out = podman.output(&["info", "--format", "{{.Store.VolumePath}}"]);
    assert!(out.status.success(), "podman info: {out:?}");
    let volumes = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut path = Path::new(&volumes);
    while !path.exists() {
        path = path.parent().unwrap_or(Path::new("/"));
    }
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .unwrap();
    let fuse = String::from_utf8_lossy(&fs.stdout).trim() == "overlayfs";
    if fuse {
        eprintln!("{volumes} is on overlayfs: the recipe with --device /dev/fuse");
    }
    PogoConfig::default().with_extra_yaml(&format!(
        "extra_arguments:\n  {BUILD_IMAGES_TAG}:\n    project_volume: {IMAGE_STORAGE}\n{}",
        if fuse {
            "    args: --device /dev/fuse\n    privileged: true\n"
        } else {
            ""
        }
    ))
}

/// A job in [`IMG_BUILDAH`] that builds an image from a Containerfile (FROM the busybox
/// archive, one RUN) with `buildah build --layers`, then shows it is there: in `buildah
/// images`, and `buildah from` + `buildah run` read the file the RUN wrote.
pub fn image_build_job(env: &TestEnv, tags: &[&str]) -> Job {
    let mut job = env.job(
        tags,
        &[
            "mkdir -p /tmp/ctx",
            &format!(
                "printf 'FROM oci-archive:{BUILDAH_BASE_ARCHIVE}\\nRUN echo built-in-a-pogo-job > /built\\n' > /tmp/ctx/Containerfile"
            ),
            "buildah build --layers -t localhost/pogo-built:test /tmp/ctx",
            "buildah images --format 'image={{.Name}}:{{.Tag}}'",
            "c=$(buildah from localhost/pogo-built:test)",
            "echo \"inside: $(buildah run \"$c\" cat /built)\"",
            "buildah rm \"$c\"",
        ],
    );
    job.image = Some(Image::new(IMG_BUILDAH));
    job
}

/// The job built the image (it is listed, and a container of it has the RUN's file); `cached`:
/// the RUN step's layer came from an earlier job ("Using cache"), else it ran.
pub fn assert_built_an_image(r: &JobResult, cached: bool) {
    assert_success(r);
    let log = plain_log(r);
    assert!(
        log.contains("\nimage=localhost/pogo-built:test\n"),
        "the built image is not listed:\n{log}"
    );
    assert!(log.contains("\ninside: built-in-a-pogo-job\n"), "{log}");
    assert_eq!(
        log.contains("--> Using cache "),
        cached,
        "the RUN step's layer should {}come from the project's earlier job:\n{log}",
        if cached { "" } else { "not " }
    );
}

/// The project volumes (`project_volume:`) of `runner` in `env.podman`'s storage.
pub fn project_volumes_of(env: &TestEnv, runner: &str) -> Vec<String> {
    builds_volumes_of(env, runner)
        .into_iter()
        .filter(|v| v.starts_with("pogo-project-"))
        .collect()
}
