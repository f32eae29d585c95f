//! Builds `pogo-agent` (src/agent/main.rs), the in-container stage runner, as a static
//! program embedded into pogo. (src/agent is also a workspace member, so that fmt, clippy and
//! `cargo test` cover it; that build is not the one embedded.) Without a static C library the
//! build still succeeds: pogo then always runs stages with `podman exec`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/agent/main.rs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(pogo_agent)");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let agent = out.join("pogo-agent");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let target = std::env::var("TARGET").unwrap_or_default();
    let ok = target.contains("linux")
        && Command::new(&rustc)
            .args([
                "--edition=2021",
                "--crate-name=pogo_agent",
                "-Copt-level=2",
                "-Cpanic=abort",
                "-Cstrip=symbols",
                "-Ctarget-feature=+crt-static",
                "--target",
                &target,
                "-o",
            ])
            .arg(&agent)
            .arg("src/agent/main.rs")
            .status()
            .is_ok_and(|s| s.success());
    // names installed copies of this build's agent
    let bytes = std::fs::read(&agent).unwrap_or_default();
    let id = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    println!("cargo:rustc-env=POGO_AGENT_ID={id:016x}");
    if ok {
        println!("cargo:rustc-cfg=pogo_agent");
    } else {
        println!(
            "cargo:warning=pogo-agent could not be built statically; stages will use podman exec"
        );
        let _ = std::fs::write(&agent, b"");
    }
}
