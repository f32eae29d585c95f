//! Live CPU and memory of running containers, read from their cgroups — the files `podman
//! stats` reads — so that the dashboard starts no podman for its numbers. A container's cgroup
//! comes from `/proc/PID/cgroup` of its main process (podman ps's `Pid`), the hierarchies'
//! mount points from `/proc/self/mountinfo`; cgroup v2 (`cpu.stat`, `memory.current`) and v1
//! (`cpuacct.usage`, `memory.usage_in_bytes`). Memory in use leaves out the inactive page cache,
//! as podman and docker do. Parsing is pure; [`Open`] does the file reads.

use std::path::{Path, PathBuf};

/// Where the cgroup hierarchies are mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mounts {
    /// v1: each hierarchy's controllers (`cpu`, `cpuacct`, `memory`…) and mount point.
    v1: Vec<(Vec<String>, PathBuf)>,
    /// The unified (v2) hierarchy's mount point.
    v2: Option<PathBuf>,
}

/// The files of one container's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    V2 { dir: PathBuf },
    V1 { cpuacct: PathBuf, memory: PathBuf },
}

/// A container's use so far: CPU time (ns) and memory in use (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub mem: u64,
}

/// The cgroup mounts of `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Mounts {
    let mut m = Mounts::default();
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount_point = left.split(' ').nth(4).map(unescape);
        let mut r = right.split(' ');
        let (Some(fstype), Some(mount_point)) = (r.next(), mount_point) else {
            continue;
        };
        let super_options = r.nth(1).unwrap_or_default();
        match fstype {
            "cgroup2" => {
                m.v2.get_or_insert(PathBuf::from(mount_point));
            }
            "cgroup" => {
                let controllers = super_options
                    .split(',')
                    .filter(|o| !matches!(*o, "rw" | "ro") && !o.contains('='))
                    .map(str::to_string)
                    .collect();
                m.v1.push((controllers, PathBuf::from(mount_point)));
            }
            _ => {}
        }
    }
    m
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(char::from(b)),
                Err(_) => {
                    out.push('\\');
                    out.push_str(&code);
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The files of the cgroup that `/proc/PID/cgroup` (`proc_cgroup`) names: v1 when its
/// `cpuacct` and `memory` hierarchies are mounted, else v2's. Only a cgroup of the container's
/// own (its path names `container_id`, as podman names them: `libpod-ID`): rootless podman on
/// cgroup v1 leaves containers in the user's session cgroup, whose numbers are not theirs.
pub fn files(mounts: &Mounts, proc_cgroup: &str, container_id: &str) -> Option<Files> {
    if container_id.len() < 12 || !proc_cgroup.contains(container_id) {
        return None;
    }
    let mut v2_path = None;
    let (mut cpuacct, mut memory) = (None, None);
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_string());
            continue;
        }
        for c in controllers.split(',') {
            let mount = mounts
                .v1
                .iter()
                .find(|(cs, _)| cs.iter().any(|x| x == c))
                .map(|(_, p)| p.join(path));
            match c {
                "cpuacct" => cpuacct = mount,
                "memory" => memory = mount,
                _ => {}
            }
        }
    }
    if let (Some(cpuacct), Some(memory)) = (cpuacct, memory) {
        return Some(Files::V1 { cpuacct, memory });
    }
    Some(Files::V2 {
        dir: mounts.v2.as_ref()?.join(v2_path?),
    })
}

/// The value of `key` in a flat-keyed cgroup file (`cpu.stat`, `memory.stat`).
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// v2: `cpu.stat`'s `usage_usec`, `memory.current` less `memory.stat`'s `inactive_file`.
pub fn usage_v2(cpu_stat: &str, memory_current: &str, memory_stat: &str) -> Option<Usage> {
    let used: u64 = memory_current.trim().parse().ok()?;
    let inactive = field(memory_stat, "inactive_file").unwrap_or(0);
    Some(Usage {
        cpu_ns: field(cpu_stat, "usage_usec")?.saturating_mul(1000),
        mem: used.saturating_sub(inactive),
    })
}

/// v1: `cpuacct.usage` (ns), `memory.usage_in_bytes` less `memory.stat`'s `total_inactive_file`.
pub fn usage_v1(cpuacct_usage: &str, usage_in_bytes: &str, memory_stat: &str) -> Option<Usage> {
    let used: u64 = usage_in_bytes.trim().parse().ok()?;
    let inactive = field(memory_stat, "total_inactive_file").unwrap_or(0);
    Some(Usage {
        cpu_ns: cpuacct_usage.trim().parse().ok()?,
        mem: used.saturating_sub(inactive),
    })
}

/// A container's three files, open: read again from their start at each sample (no path
/// lookups after the first).
#[derive(Debug)]
pub struct Open {
    v2: bool,
    cpu: std::fs::File,
    mem: std::fs::File,
    stat: Option<std::fs::File>,
}

impl Open {
    pub fn new(files: &Files) -> Option<Self> {
        let open = |p: PathBuf| std::fs::File::open(p).ok();
        let (v2, cpu, mem, stat) = match files {
            Files::V2 { dir } => (
                true,
                dir.join("cpu.stat"),
                dir.join("memory.current"),
                dir.join("memory.stat"),
            ),
            Files::V1 { cpuacct, memory } => (
                false,
                cpuacct.join("cpuacct.usage"),
                memory.join("memory.usage_in_bytes"),
                memory.join("memory.stat"),
            ),
        };
        Some(Self {
            v2,
            cpu: open(cpu)?,
            mem: open(mem)?,
            stat: open(stat),
        })
    }

    /// The container's use now; none once its cgroup is gone.
    pub fn read(&mut self) -> Option<Usage> {
        fn again(f: &mut std::fs::File) -> Option<String> {
            use std::io::{Read, Seek};
            f.rewind().ok()?;
            let mut text = String::new();
            f.read_to_string(&mut text).ok()?;
            Some(text)
        }
        let cpu = again(&mut self.cpu)?;
        let mem = again(&mut self.mem)?;
        let stat = self.stat.as_mut().and_then(again).unwrap_or_default();
        if self.v2 {
            usage_v2(&cpu, &mem, &stat)
        } else {
            usage_v1(&cpu, &mem, &stat)
        }
    }
}

/// The files of container `id` whose main process is `pid`, if this host lets pogo read them.
pub fn files_of_pid(mounts: &Mounts, pid: u32, id: &str) -> Option<Files> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("cgroup")).ok()?;
    files(mounts, &text, id)
}

/// This process's view of the cgroup mounts.
pub fn mounts() -> Mounts {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// CPU use between two samples `elapsed_ns` apart, in percent of one core (as podman shows it).
pub fn cpu_percent(before: Usage, after: Usage, elapsed_ns: u64) -> f64 {
    if elapsed_ns == 0 {
        return 0.0;
    }
    after.cpu_ns.saturating_sub(before.cpu_ns) as f64 / elapsed_ns as f64 * 100.0
}

/// Bytes as podman shows them: SI units, 4 significant digits (`812.4MB`, `520.2kB`, `0B`).
pub fn si_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let decimals = match v {
        v if v >= 100.0 => 1,
        v if v >= 10.0 => 2,
        _ => 3,
    };
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
25 30 0:23 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
27 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    const MOUNTINFO_V2: &str = "\
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn a_v1_container_is_read_from_its_cpuacct_and_memory_hierarchies() {
        let m = parse_mountinfo(MOUNTINFO_V1);
        let cgroup = "\
12:memory:/libpod_parent/libpod-abc123456789
4:cpu,cpuacct:/libpod_parent/libpod-abc123456789
0::/libpod_parent/libpod-abc123456789
";
        assert_eq!(
            files(&m, cgroup, "abc123456789"),
            Some(Files::V1 {
                cpuacct: "/sys/fs/cgroup/cpu,cpuacct/libpod_parent/libpod-abc123456789".into(),
                memory: "/sys/fs/cgroup/memory/libpod_parent/libpod-abc123456789".into(),
            })
        );
        // rootless podman on cgroup v1: the user's session cgroup is not the container's
        let session =
            "4:cpu,cpuacct:/user.slice/session-3.scope\n12:memory:/user.slice/session-3.scope\n";
        assert_eq!(files(&m, session, "abc123456789"), None);
    }

    #[test]
    fn a_v2_container_is_read_from_the_unified_hierarchy() {
        let m = parse_mountinfo(MOUNTINFO_V2);
        let cgroup = "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-abc123456789.scope/container\n";
        assert_eq!(
            files(&m, cgroup, "abc123456789"),
            Some(Files::V2 {
                dir: "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-abc123456789.scope/container".into()
            })
        );
        assert_eq!(
            files(&Mounts::default(), cgroup, "abc123456789"),
            None,
            "no cgroup2 mount"
        );
    }

    #[test]
    fn a_mount_point_with_a_space_is_unescaped() {
        let m = parse_mountinfo("1 0 0:1 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n");
        assert_eq!(m.v2, Some(PathBuf::from("/mnt/my cgroup")));
    }

    #[test]
    fn usage_leaves_out_the_inactive_page_cache() {
        let u = usage_v2(
            "usage_usec 2500000\nuser_usec 2000000\n",
            "10485760\n",
            "anon 1000\ninactive_file 4194304\n",
        );
        assert_eq!(
            u,
            Some(Usage {
                cpu_ns: 2_500_000_000,
                mem: 6_291_456
            })
        );
        let u = usage_v1(
            "123456789\n",
            "2048\n",
            "cache 0\ntotal_inactive_file 1024\n",
        );
        assert_eq!(
            u,
            Some(Usage {
                cpu_ns: 123_456_789,
                mem: 1024
            })
        );
        assert_eq!(usage_v2("garbage", "1", ""), None);
    }

    #[test]
    fn cpu_percent_is_of_one_core_over_the_interval() {
        let at = |ns| Usage { cpu_ns: ns, mem: 0 };
        assert_eq!(cpu_percent(at(0), at(1_000_000_000), 2_000_000_000), 50.0);
        assert_eq!(cpu_percent(at(0), at(4_000_000_000), 2_000_000_000), 200.0);
        assert_eq!(
            cpu_percent(at(5), at(1), 10),
            0.0,
            "a counter reset is 0, not negative"
        );
        assert_eq!(cpu_percent(at(0), at(1), 0), 0.0);
    }

    #[test]
    fn sizes_read_as_podman_writes_them() {
        assert_eq!(si_size(0), "0B");
        assert_eq!(si_size(520_200), "520.2kB");
        assert_eq!(si_size(1_450_000), "1.45MB");
        assert_eq!(si_size(812_400_000), "812.4MB");
        assert_eq!(si_size(25_280_000_000), "25.28GB");
    }
}
