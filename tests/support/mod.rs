//! Shared helpers for integration tests against real SIP peers on loopback.
//!
//! Every peer runs in its own temp dir on its own free ports, so test files (and tests
//! within a file) run in parallel. Missing programs make the test FAIL with a message
//! saying what to install: CI installs them, and a silently skipped interop test would
//! hide exactly the regressions these tests exist for.
#![allow(dead_code)]

mod agent;
#[allow(unused_imports)]
pub use agent::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod capture;
pub mod dispatcher;
pub mod entropy;
pub mod postgres;

/// Fails the test when `program` is not on PATH.
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    let found = found || Path::new("/usr/sbin").join(program).is_file();
    assert!(
        found,
        "`{program}` is not installed but this interop test needs it. Install it with \
         `apt-get install -y {package}` (see /work/shared/notes/sip-peers.md) and run the test again."
    );
}

/// A port free on 127.0.0.1 for both UDP and TCP (and, with `span`, the next ports too).
pub fn free_port_span(span: u16) -> u16 {
    for _ in 0..200 {
        let Ok(u) = UdpSocket::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(a) = u.local_addr() else { continue };
        let base = a.port();
        if base.checked_add(span).is_none() || base < 20000 {
            continue;
        }
        drop(u);
        let ok = (0..span.max(1)).all(|i| {
            UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
        });
        if ok {
            return base;
        }
    }
    panic!("no free port range on 127.0.0.1");
}

pub fn free_port() -> u16 {
    free_port_span(1)
}

/// A port free on 127.0.0.1 for UDP and TCP, below the kernel's ephemeral range
/// (32768–60999 on Linux), for a peer that is stopped and started again on the same
/// port (a registrar restart): between the two, a port from [`free_port`] can be
/// handed to any socket bound to port 0 or any outgoing connection of a test running
/// beside this one; one below the range cannot.
pub fn free_restartable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut x = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        | 1;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port between 20000 and 31999 on 127.0.0.1");
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Sends an out-of-dialog OPTIONS to `user` at the Kamailio on `port` and returns the
/// final status: 200 when the user is registered (Kamailio relays it), 404 when not.
pub fn sip_ping(port: u16, user: &str) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let me = sock.local_addr().ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let call_id = format!("ping-{}-{}", std::process::id(), me.port());
    let req = format!(
        "OPTIONS sip:{user}@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{call_id};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.send_to(req.as_bytes(), ("127.0.0.1", port)).ok()?;
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]);
                let code: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
                if code >= 200 {
                    return Some(code);
                }
            }
        }
    }
    None
}

/// SIPp aimed at `target` (`host:port`), on a free local port of 127.0.0.1, with no
/// keyboard and `dir` as its working directory (its logs and CSV files go there).
/// Fails the test with an install hint when SIPp is missing. Add the scenario
/// (`-sn uac` or `-sf FILE`), the user (`-s`), counts and timeouts.
pub fn sipp(target: impl std::fmt::Display, dir: &Path) -> Command {
    require("sipp", "sip-tester");
    let mut cmd = Command::new("sipp");
    cmd.arg(target.to_string())
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .arg("-nostdin")
        .current_dir(dir)
        .stdin(Stdio::null());
    cmd
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The `tingshuo` binary under test. `TINGSHUO_BIN` overrides it, e.g. to pin a
/// copied build while other builds share the target directory.
pub fn tingshuo() -> Command {
    Command::new(
        std::env::var_os("TINGSHUO_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_tingshuo").into()),
    )
}

/// What `tingshuo transcribe` hears in a WAV file (a phone's recording of the
/// agent), as text.
pub fn transcribe(wav: &Path) -> String {
    let out = tingshuo()
        .arg("transcribe")
        .arg(wav)
        .output()
        .expect("run tingshuo transcribe");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A child process killed (by its own pid) when dropped.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// SIGTERM first (Kamailio's main process then stops its children; SIGKILL would
    /// orphan them with the sockets still open), SIGKILL if it lingers.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    /// Stops the process; when the test is failing, the end of its log goes to
    /// stderr (the test's captured output), so every failure carries its peers' logs.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- last {} lines of {} -----\n{}\n-----",
                tail.len(),
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// Kamailio registrar/proxy from sip-config/kamailio-test.cfg on its own port.
pub struct Kamailio {
    pub port: u16,
    /// The TLS port, when started with [`Kamailio::start_tls`].
    pub tls_port: Option<u16>,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

/// Kamailio's TLS server certificate (self-signed for 127.0.0.1) as PEM files in `dir`:
/// `kamailio.crt` (also the CA file agents trust) and `kamailio.key`.
pub fn kamailio_tls_files(dir: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("generate a certificate");
    let crt = dir.join("kamailio.crt");
    let key = dir.join("kamailio.key");
    std::fs::write(&crt, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("write key");
    (crt, key)
}

impl Kamailio {
    /// On a port that stays ours across a restart ([`free_restartable_port`]).
    pub fn start() -> Self {
        Self::start_on(free_restartable_port())
    }

    pub fn start_on(port: u16) -> Self {
        Self::start_inner(port, None)
    }

    /// Also listening for SIP over TLS on a free port (tls.so from `kamailio-tls-modules`),
    /// with a self-signed certificate in `dir` (see [`kamailio_tls_files`]). Kamailio
    /// honours the RFC 5923 `alias` Via parameter (`tcp_accept_aliases`), and does not
    /// verify agents' certificates (they are self-signed in tests).
    pub fn start_tls() -> Self {
        require("kamailio", "kamailio");
        assert!(
            Path::new("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so").is_file()
                || Path::new("/usr/lib/kamailio/modules/tls.so").is_file(),
            "Kamailio's TLS module is not installed but this test needs it. Install it with \
             `apt-get install -y kamailio-tls-modules` and run the test again."
        );
        let port = free_port();
        let tls = loop {
            let t = free_port();
            if t != port {
                break t;
            }
        };
        Self::start_inner(port, Some(tls))
    }

    fn start_inner(port: u16, tls: Option<u16>) -> Self {
        Self::start_from("sip-config/kamailio-test.cfg", port, tls, |_, cfg| cfg)
    }

    /// Kamailio from the repository's config file `rel_cfg` on `port` (every
    /// `127.0.0.1:5060` in it replaced), optionally with TLS. `edit` gets the
    /// instance's temp dir and the config text and returns the text to run (paths of
    /// files the config names, e.g. a dispatcher list).
    pub fn start_from(
        rel_cfg: &str,
        port: u16,
        tls: Option<u16>,
        edit: impl FnOnce(&Path, String) -> String,
    ) -> Self {
        require("kamailio", "kamailio");
        // A Kamailio just stopped on this port (a restart in the fail-over test)
        // exits before its forked children have closed their listening sockets:
        // wait until both the UDP and the TCP port can be bound again.
        let free = wait_until(Duration::from_secs(10), || {
            UdpSocket::bind(("127.0.0.1", port)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        });
        assert!(
            free,
            "port {port} still taken 10 s after its last user stopped"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = std::fs::read_to_string(repo_file(rel_cfg))
            .unwrap_or_else(|e| panic!("{rel_cfg} is in the repository: {e}"));
        let mut cfg = edit(
            dir.path(),
            cfg.replace("127.0.0.1:5060", &format!("127.0.0.1:{port}")),
        );
        if let Some(tls_port) = tls {
            let (crt, key) = kamailio_tls_files(dir.path());
            let tls_cfg = dir.path().join("tls.cfg");
            std::fs::write(
                &tls_cfg,
                format!(
                    "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
                     private_key = {}\ncertificate = {}\n\n[client:default]\nmethod = TLSv1.2+\n\
                     verify_certificate = no\nrequire_certificate = no\n",
                    key.display(),
                    crt.display()
                ),
            )
            .expect("write tls.cfg");
            cfg = cfg.replacen(
                "auto_aliases=no\n",
                &format!(
                    "auto_aliases=no\nenable_tls=yes\ntcp_accept_aliases=yes\nlisten=tls:127.0.0.1:{tls_port}\n\
                     alias=\"127.0.0.1:{tls_port}\"\nloadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"{}\")\n",
                    tls_cfg.display()
                ),
                1,
            );
        }
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).expect("write kamailio.cfg");
        let run = dir.path().join("run");
        std::fs::create_dir_all(&run).expect("run dir");
        let log = dir.path().join("kamailio.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-Y"])
            .arg(&run)
            .args(["-m", "32", "-M", "8"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("kamailio starts");
        let k = Self {
            port,
            tls_port: tls,
            proc: Proc { child, log },
            dir,
        };
        let up = wait_until(Duration::from_secs(10), || {
            // Registrar itself answers OPTIONS with no user part.
            sip_ping_registrar(port).is_some()
        });
        assert!(
            up,
            "kamailio on port {port} did not come up; log:\n{}",
            k.proc.log_text()
        );
        k
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// OPTIONS to the registrar itself (no user part): 200 when it runs.
pub fn sip_ping_registrar(port: u16) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    let me = sock.local_addr().ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .ok()?;
    let req = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKreg{};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: regping-{}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        me.port(),
        me.port()
    );
    sock.send_to(req.as_bytes(), ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    String::from_utf8_lossy(&buf[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Writes an 8 kHz mono 16-bit WAV (baresip's aufile source needs exactly that).
pub fn write_wav(path: &Path, samples: &[i16]) {
    write_wav_at(path, samples, 8000);
}

/// Writes a mono 16-bit WAV at `rate` (a wideband phone's source is 16 kHz).
pub fn write_wav_at(path: &Path, samples: &[i16], rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for s in samples {
        w.write_sample(*s).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// A tone of `secs` seconds at `hz`.
pub fn tone(secs: f32, hz: f32) -> Vec<i16> {
    tone_at(secs, hz, 8000)
}

/// [`tone`] at `rate` Hz (16000 for a wideband phone's source).
pub fn tone_at(secs: f32, hz: f32, rate: u32) -> Vec<i16> {
    let r = rate as f32;
    let n = (secs * r) as usize;
    (0..n)
        .map(|i| ((i as f32 / r * hz * std::f32::consts::TAU).sin() * 8000.0) as i16)
        .collect()
}

/// A headless baresip phone registered on a Kamailio, controlled over ctrl_tcp.
pub struct Baresip {
    pub user: String,
    pub sip_port: u16,
    pub ctrl_port: u16,
    pub proc: Proc,
    pub dir: tempfile::TempDir,
}

/// What a baresip phone's audio runs at and which codecs it offers.
pub struct PhoneAudio {
    /// Source, player and sndfile rate (the source WAV must have it).
    pub rate: u32,
    /// Codec modules to load, e.g. `["g711.so", "g722.so"]`.
    pub modules: &'static [&'static str],
    /// The account's `audio_codecs`, in offer order.
    pub codecs: &'static str,
}

/// A narrowband G.711 phone (every test before G.722).
pub const G711_PHONE: PhoneAudio = PhoneAudio {
    rate: 8000,
    modules: &["g711.so"],
    codecs: "PCMU/8000/1,PCMA/8000/1",
};

/// An HD-voice phone: G.722 first (baresip's g722 module), G.711 as fall-back.
pub const G722_PHONE: PhoneAudio = PhoneAudio {
    rate: 16_000,
    modules: &["g711.so", "g722.so"],
    codecs: "G722/16000/1,PCMU/8000/1,PCMA/8000/1",
};

impl Baresip {
    /// `answermode`: "auto" (answers at once) or "manual".
    pub fn start(user: &str, kamailio_port: u16, answermode: &str, source: &[i16]) -> Self {
        Self::start_with(user, kamailio_port, answermode, source, &G711_PHONE)
    }

    /// [`Self::start`] with the audio rate and codecs of `audio`.
    pub fn start_with(
        user: &str,
        kamailio_port: u16,
        answermode: &str,
        source: &[i16],
        audio: &PhoneAudio,
    ) -> Self {
        Self::start_account(user, kamailio_port, answermode, source, audio, "")
    }

    /// A G.711 phone that refuses to be transferred (`call_transfer=no`: it answers
    /// REFER with an error, as phones and PBXs with transfers disabled do).
    pub fn start_refusing_transfers(user: &str, kamailio_port: u16, source: &[i16]) -> Self {
        Self::start_account(
            user,
            kamailio_port,
            "auto",
            source,
            &G711_PHONE,
            ";call_transfer=no",
        )
    }

    /// A G.711 phone registered over TLS on `kam` (`Kamailio::start_tls`, its
    /// certificate trusted) that insists on SRTP (`mediaenc=srtp-mand`: SDES keys in
    /// `a=crypto`, RTP/SAVP).
    pub fn start_tls_srtp(user: &str, kam: &Kamailio, answermode: &str, source: &[i16]) -> Self {
        let tls = kam.tls_port.expect("Kamailio::start_tls");
        // Kamailio opens its own TLS connection to the phone's contact for requests to
        // it (the phone sends no `alias`), so the phone needs a certificate of its own.
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("generate a certificate");
        let pem = kam.dir.path().join(format!("phone-{user}.pem"));
        std::fs::write(
            &pem,
            format!("{}{}", ck.cert.pem(), ck.key_pair.serialize_pem()),
        )
        .expect("write the phone's certificate");
        Self::launch(
            user,
            (tls, "tls", kam.port),
            answermode,
            source,
            &G711_PHONE,
            ";mediaenc=srtp-mand",
            &format!(
                "module\t\t\tsrtp.so\nsip_cafile\t\t{}\nsip_certificate\t\t{}\n",
                kam.dir.path().join("kamailio.crt").display(),
                pem.display()
            ),
        )
    }

    /// [`Self::start_with`] with more account parameters (`;name=value…`).
    fn start_account(
        user: &str,
        kamailio_port: u16,
        answermode: &str,
        source: &[i16],
        audio: &PhoneAudio,
        account_params: &str,
    ) -> Self {
        Self::launch(
            user,
            (kamailio_port, "udp", kamailio_port),
            answermode,
            source,
            audio,
            account_params,
            "",
        )
    }

    /// `registrar`: the port and transport the account registers with, and the UDP
    /// port where a SIP ping for `user` shows the registration.
    fn launch(
        user: &str,
        registrar: (u16, &str, u16),
        answermode: &str,
        source: &[i16],
        audio: &PhoneAudio,
        account_params: &str,
        extra_config: &str,
    ) -> Self {
        let (kamailio_port, transport, probe_port) = registrar;
        require("baresip", "baresip-core");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let base = free_port_span(16);
        let (sip_port, cons_port, ctrl_port, rtp) = (base, base + 2, base + 3, base + 4);
        let src = d.join("source.wav");
        write_wav_at(&src, source, audio.rate);
        let codec_modules: String = audio
            .modules
            .iter()
            .map(|m| format!("module\t\t\t{m}\n"))
            .collect();
        let config = format!(
            "poll_method\t\tepoll\nsip_listen\t\t127.0.0.1:{sip_port}\nnet_interface\t\t127.0.0.1\n\
audio_player\t\taufile,{heard}\naudio_source\t\taufile,{src}\naudio_alert\t\taufile,/dev/null\n\
ausrc_srate\t\t{rate}\nauplay_srate\t\t{rate}\naudio_channels\t\t1\nrtp_ports\t\t{rtp}-{rtp_end}\n\
module_path\t\t/usr/lib/baresip/modules\nmodule\t\t\tcons.so\ncons_listen\t\t127.0.0.1:{cons_port}\n\
{codec_modules}module\t\t\taufile.so\nmodule_app\t\taccount.so\nmodule_app\t\tmenu.so\n\
module_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t127.0.0.1:{ctrl_port}\nmodule\t\t\tsndfile.so\nsnd_path\t\t{dir}\n{extra_config}",
            heard = d.join("heard.wav").display(),
            src = src.display(),
            rtp_end = rtp + 11,
            rate = audio.rate,
            dir = d.display(),
        );
        std::fs::write(d.join("config"), config).expect("write config");
        let account = format!(
            "<sip:{user}@127.0.0.1:{kamailio_port};transport={transport}>;auth_pass=pass{user};answermode={answermode};ptime=20;audio_codecs={codecs};regint=60{account_params}\n",
            codecs = audio.codecs
        );
        std::fs::write(d.join("accounts"), account).expect("write accounts");
        let log = d.join("baresip.log");
        let logf = std::fs::File::create(&log).expect("log");
        let child = Command::new("baresip")
            .arg("-4")
            .arg("-f")
            .arg(d)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .expect("baresip starts");
        let b = Self {
            user: user.to_string(),
            sip_port,
            ctrl_port,
            proc: Proc { child, log },
            dir,
        };
        let registered = wait_until(Duration::from_secs(10), || {
            sip_ping(probe_port, user) == Some(200)
        });
        assert!(
            registered,
            "baresip {user} did not register on kamailio:{kamailio_port} ({transport}); log:\n{}",
            b.proc.log_text()
        );
        b
    }

    /// Sends a ctrl_tcp command (JSON in a netstring) and returns the raw reply.
    pub fn ctrl(&self, command: &str, params: &str) -> String {
        let mut s = match TcpStream::connect(("127.0.0.1", self.ctrl_port)) {
            Ok(s) => s,
            Err(e) => return format!("connect failed: {e}"),
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let json =
            format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t1\"}}");
        let _ = s.write_all(format!("{}:{},", json.len(), json).as_bytes());
        let mut buf = vec![0u8; 8192];
        let mut out = String::new();
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if out.contains("\"response\":true") && out.ends_with(',') {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Dials `target` (an extension on the registrar, or a SIP URI) and fails the
    /// test when baresip does not accept the command.
    pub fn dial(&self, target: &str) {
        let reply = self.ctrl("dial", target);
        assert!(
            reply.contains("\"ok\":true"),
            "dial {target} accepted: {reply}"
        );
    }

    /// True once baresip reports no active call.
    pub fn is_idle(&self) -> bool {
        let out = self.ctrl("listcalls", "");
        out.contains("\"ok\":true") && !out.contains("sip:")
    }

    /// The file of what the phone heard on its call (sndfile's `*-dec.wav`), once it
    /// exists (up to 5 s after the call), with a moment for the last writes.
    pub fn heard_dump(&self) -> Option<PathBuf> {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = self.dumps().0;
            found.is_some()
        });
        std::thread::sleep(Duration::from_millis(300));
        found
    }

    /// What the phone heard on all its calls so far (baresip's sndfile `*-dec.wav`
    /// dumps, oldest first).
    pub fn heard_all(&self) -> Vec<i16> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let name = f.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("dump") && name.ends_with("-dec.wav") {
                if let Ok(r) = hound::WavReader::open(&f) {
                    out.extend(r.into_samples::<i16>().map_while(Result::ok));
                }
            }
        }
        out
    }

    /// The sndfile recordings baresip wrote: (heard = decoded from the far end, sent).
    pub fn dumps(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let mut dec = None;
        let mut enc = None;
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with("dump") && name.ends_with("-dec.wav") {
                    dec = Some(e.path());
                }
                if name.starts_with("dump") && name.ends_with("-enc.wav") {
                    enc = Some(e.path());
                }
            }
        }
        (dec, enc)
    }
}

/// Address of a UDP socket pair bound for media (RTP on an even port, RTCP on +1).
pub fn media_socket() -> (UdpSocket, SocketAddr) {
    for _ in 0..100 {
        let port = free_port_span(2);
        if !port.is_multiple_of(2) {
            continue;
        }
        if let Ok(s) = UdpSocket::bind(("127.0.0.1", port)) {
            let addr = s.local_addr().expect("addr");
            return (s, addr);
        }
    }
    panic!("no even media port free");
}

/// Waits for the first event matching `pred`, failing with the events seen otherwise.
pub async fn wait_event(
    h: &mut tingshuo::sip::SipHandle,
    timeout: Duration,
    what: &str,
    mut pred: impl FnMut(&tingshuo::sip::SipEvent) -> bool,
) -> tingshuo::sip::SipEvent {
    let mut seen = Vec::new();
    let end = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(end, h.next_event()).await {
            Ok(Some(e)) if pred(&e) => return e,
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("agent stopped while waiting for {what}; events: {seen:#?}"),
            Err(_) => panic!("timed out after {timeout:?} waiting for {what}; events: {seen:#?}"),
        }
    }
}

/// The project's own SIP user agent (`bot`), registered on `kam`.
pub async fn registered_ua(kam: &Kamailio) -> tingshuo::sip::SipHandle {
    registered_ua_as(kam, "bot").await
}

/// The project's own SIP user agent as `user` (password `pass<user>`, e.g. a phone
/// `1001`), registered on `kam`.
pub async fn registered_ua_as(kam: &Kamailio, user: &str) -> tingshuo::sip::SipHandle {
    let cfg = ua_config(user, &format!("pass{user}"), &[kam.addr()]);
    let mut agent = tingshuo::sip::start(&cfg).await.expect("agent starts");
    wait_event(&mut agent, Duration::from_secs(20), "Registered", |e| {
        matches!(e, tingshuo::sip::SipEvent::Registered { .. })
    })
    .await;
    agent
}

/// Waits for call `call` to end and returns why.
pub async fn call_ended(
    agent: &mut tingshuo::sip::SipHandle,
    call: &str,
    timeout: Duration,
) -> tingshuo::sip::EndReason {
    use tingshuo::sip::{CallEvent, SipEvent};
    match wait_event(
        agent,
        timeout,
        "Ended",
        |e| matches!(e, SipEvent::Call(CallEvent::Ended { call_id, .. }) if call_id == call),
    )
    .await
    {
        SipEvent::Call(CallEvent::Ended { reason, .. }) => reason,
        _ => unreachable!(),
    }
}

/// Waits for the call being placed or answered to be answered.
pub async fn answered(agent: &mut tingshuo::sip::SipHandle, timeout: Duration) {
    use tingshuo::sip::{CallEvent, SipEvent};
    wait_event(agent, timeout, "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
}

/// The phone hangs up an established call `call` after `talk`; the agent must see
/// the remote hang-up (BYE) within 20 s.
pub async fn phone_hangs_up(
    agent: &mut tingshuo::sip::SipHandle,
    phone: &std::sync::Arc<Baresip>,
    call: &str,
    talk: Duration,
) {
    tokio::time::sleep(talk).await;
    let p = phone.clone();
    blocking(move || p.ctrl("hangup", "")).await;
    assert_eq!(
        call_ended(agent, call, Duration::from_secs(20)).await,
        tingshuo::sip::EndReason::RemoteHangup
    );
}

/// The agent hangs up an established call `call` the phone is in: the phone showed
/// the call before, and is idle again within 15 s (it got our BYE).
pub async fn agent_hangs_up(
    agent: &mut tingshuo::sip::SipHandle,
    phone: &std::sync::Arc<Baresip>,
    call: &str,
) {
    let p = phone.clone();
    assert!(
        !blocking(move || p.is_idle()).await,
        "the phone shows the call"
    );
    agent
        .send(tingshuo::sip::Command::Hangup {
            call_id: call.to_string(),
        })
        .expect("hangup");
    assert_eq!(
        call_ended(agent, call, Duration::from_secs(20)).await,
        tingshuo::sip::EndReason::LocalHangup
    );
    let p = phone.clone();
    let idle = blocking(move || wait_until(Duration::from_secs(15), || p.is_idle())).await;
    assert!(
        idle,
        "the phone ended the call after our BYE; log:\n{}",
        phone.proc.log_text()
    );
}

/// Runs blocking test code (std sockets, child processes) off the async workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Agent config for tests: free port, registrars, bot/passbot.
pub fn agent_config(registrars: &[String]) -> tingshuo::config::Config {
    ua_config("bot", "passbot", registrars)
}

/// [`agent_config`] as another user.
pub fn ua_config(user: &str, password: &str, registrars: &[String]) -> tingshuo::config::Config {
    let regs: Vec<String> = registrars.iter().map(|r| format!("\"{r}\"")).collect();
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:{}\"\nregistrars = [{}]\nuser = \"{user}\"\npassword = \"{password}\"\nregister_expires = 60\n",
        free_port(),
        regs.join(", ")
    );
    tingshuo::config::Config::parse(&text, Path::new("test.toml")).expect("test config parses")
}

/// Share of the reference's adjacent Han-character pairs found in what was heard:
/// a recognition check tolerant of single-character slips.
pub fn bigram_coverage(reference: &str, heard: &str) -> f64 {
    let han = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
            .collect()
    };
    let r = han(reference);
    let h: String = han(heard).into_iter().collect();
    let pairs: Vec<String> = r.windows(2).map(|w| w.iter().collect()).collect();
    let hits = pairs.iter().filter(|p| h.contains(p.as_str())).count();
    hits as f64 / pairs.len().max(1) as f64
}

/// Largest share of a 200 ms window's energy at `hz` (1.0 = a pure tone), over
/// windows loud enough to matter; 8 kHz audio (what a G.711 phone heard).
pub fn tone_share(samples: &[i16], hz: f32) -> f32 {
    tone_share_at(samples, hz, 8000)
}

/// [`tone_share`] for audio at `rate` Hz.
pub fn tone_share_at(samples: &[i16], hz: f32, rate: u32) -> f32 {
    let n = rate as usize / 5;
    let w = std::f32::consts::TAU * hz / rate as f32;
    samples
        .chunks_exact(n)
        .filter_map(|c| {
            let energy: f32 = c.iter().map(|&s| (s as f32).powi(2)).sum();
            if energy / (n as f32) < 100.0f32.powi(2) {
                return None;
            }
            let (mut re, mut im) = (0.0f32, 0.0f32);
            for (i, &s) in c.iter().enumerate() {
                re += s as f32 * (w * i as f32).cos();
                im -= s as f32 * (w * i as f32).sin();
            }
            Some((re * re + im * im).sqrt() / ((n as f32 / 2.0).sqrt() * energy.sqrt()))
        })
        .fold(0.0, f32::max)
}

/// A log without its colour codes (tracing writes `key<ESC>[2m=<ESC>[0mvalue`).
pub fn strip_ansi(text: &str) -> String {
    text.split('\x1b')
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part
            } else {
                part.split_once('m').map_or("", |(_, rest)| rest)
            }
        })
        .collect()
}
