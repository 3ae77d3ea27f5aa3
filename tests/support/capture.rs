//! A packet capture on the loopback (`tcpdump -i lo`, which needs root or CAP_NET_RAW),
//! read back as IPv4 TCP/UDP payloads: for tests that must show what an eavesdropper
//! on the path would see.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{require, wait_until, Proc};

/// One captured IPv4 TCP or UDP packet.
#[derive(Debug, Clone)]
pub struct Packet {
    pub tcp: bool,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
}

/// A running `tcpdump -i lo -U -w FILE FILTER`.
pub struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing what `filter` (a pcap filter) selects, and waits until tcpdump
    /// listens.
    pub fn start(dir: &Path, filter: &str) -> Self {
        require("tcpdump", "tcpdump");
        let file = dir.join("loopback.pcap");
        let log = dir.join("tcpdump.log");
        let logf = std::fs::File::create(&log).expect("tcpdump log");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-s", "0", "-U", "-w"])
            .arg(&file)
            .arg(filter)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("tcpdump starts");
        let c = Self {
            proc: Proc { child, log },
            file,
        };
        let listening = wait_until(Duration::from_secs(10), || {
            c.proc.log_text().contains("listening on")
        });
        assert!(
            listening,
            "tcpdump did not start capturing on lo (it needs root or CAP_NET_RAW); log:\n{}",
            c.proc.log_text()
        );
        c
    }

    /// Stops the capture and returns its packets.
    pub fn finish(mut self) -> Vec<Packet> {
        self.proc.kill();
        let bytes = std::fs::read(&self.file).expect("read the capture");
        parse_pcap(&bytes)
    }
}

/// IPv4 TCP/UDP packets of a classic pcap file (Ethernet or Linux cooked framing).
fn parse_pcap(b: &[u8]) -> Vec<Packet> {
    let mut out = Vec::new();
    if b.len() < 24 {
        return out;
    }
    let le = matches!(b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let u32_at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let link = u32_at(20);
    let link_header = match link {
        1 => 14,   // Ethernet (what `-i lo` gives on Linux)
        113 => 16, // Linux cooked capture
        _ => panic!("unexpected pcap link type {link}"),
    };
    let mut at = 24;
    while at + 16 <= b.len() {
        let incl = u32_at(at + 8) as usize;
        let start = at + 16;
        let Some(frame) = b.get(start..start + incl) else {
            break;
        };
        at = start + incl;
        let Some(ip) = frame.get(link_header..) else {
            continue;
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 {
            continue;
        }
        let ihl = (ip[0] & 0x0f) as usize * 4;
        let total = (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip.len());
        let proto = ip[9];
        let Some(l4) = ip.get(ihl..total) else {
            continue;
        };
        if l4.len() < 8 {
            continue;
        }
        let src_port = u16::from_be_bytes([l4[0], l4[1]]);
        let dst_port = u16::from_be_bytes([l4[2], l4[3]]);
        let payload = match proto {
            6 if l4.len() >= 20 => l4.get((l4[12] >> 4) as usize * 4..),
            17 => l4.get(8..),
            _ => None,
        };
        if let Some(p) = payload {
            out.push(Packet {
                tcp: proto == 6,
                src_port,
                dst_port,
                payload: p.to_vec(),
            });
        }
    }
    out
}
