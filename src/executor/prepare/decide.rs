//! The decisions prepare takes once the images are known, as a pure function of the job's
//! checked request, the config and the images' inspect data: how stages start (entrypoints),
//! whether the container runs as a non-root user, where the builds directory lives, which
//! ports each service must open before the job starts.

use super::{check_entrypoint, InspectedConfig, InspectedImage, Request};
use crate::config::Config;
use crate::executor::{plan, Failure};

/// The images a job uses, in local storage, with what their inspect says.
pub struct Images {
    pub job: InspectedImage,
    /// One per service, in the job's order.
    pub services: Vec<InspectedImage>,
    pub helper: Option<HelperImage>,
}

/// The runner's `helper_image`, where one is configured.
pub struct HelperImage {
    pub image: String,
    pub inspected: InspectedImage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The job image's entrypoint each stage starts through (the job's `image: entrypoint:`,
    /// else the image's); empty: stages start the shell directly.
    pub entrypoint: Vec<String>,
    /// The helper image's entrypoint, when there is a helper image.
    pub helper_entrypoint: Option<Vec<String>>,
    /// The job container runs as a non-root user (`docker: user`, else the image's USER).
    pub non_root: bool,
    pub builds: plan::BuildsVolume,
    /// Per service: the TCP ports to wait for (its `ports:`, else the image's exposed ones).
    pub service_waits: Vec<Vec<u16>>,
}

pub fn decide(config: &Config, req: &Request<'_>, images: &Images) -> Result<Decided, Failure> {
    let helper_entrypoint = match &images.helper {
        None => None,
        Some(h) => Some(
            check_entrypoint(
                h.inspected.config.entrypoint.as_deref().unwrap_or(&[]),
                &format!("helper image {}", h.image),
            )
            .map_err(|_| {
                Failure::system(format!(
                    "the entrypoint of helper_image {} is not usable; fix the image",
                    h.image
                ))
            })?,
        ),
    };
    // Each stage starts through the entrypoint, as the Docker executor starts each of its
    // stage containers; pogo's own init replaces it as the container's main process.
    let entrypoint = match &req.entrypoint_override {
        Some(ep) => ep.clone(),
        None => check_entrypoint(
            images.job.config.entrypoint.as_deref().unwrap_or(&[]),
            &format!("image {}", req.image),
        )?,
    };
    // An image with a non-root USER cannot make the builds directory in the container's
    // root-owned filesystem (see plan::BuildsVolume).
    let non_root = match &req.docker.user {
        // `docker: user` is who the container runs as, whatever the image's USER
        Some(user) => InspectedConfig {
            user: Some(user.clone()),
            ..InspectedConfig::default()
        }
        .runs_as_non_root(),
        None => images.job.config.runs_as_non_root(),
    };
    let service_waits = req
        .service_ports
        .iter()
        .zip(&images.services)
        .map(|(ports, info)| {
            ports
                .clone()
                .unwrap_or_else(|| super::exposed_tcp_ports(info))
        })
        .collect();
    Ok(Decided {
        entrypoint,
        helper_entrypoint,
        non_root,
        builds: plan::builds_volume(config, req.fetch, images.helper.is_some(), non_root),
        service_waits,
    })
}
