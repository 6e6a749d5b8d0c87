//! `podnet run --pcap DIR` as packets pass: an observer appending each frame to its
//! interface's Ethernet pcap and to `any.pcap` (Linux cooked, like `tcpdump -i any`), with at
//! most [`FLUSH_AT`] bytes per file held in memory.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use podnet::pcap::PcapBuffer;
use podnet::trace::{EventRef, Ifaces, Observer};
use podnet::Instant;

use crate::common::Failure;

/// Bytes of a capture kept before they are appended to its file.
const FLUSH_AT: usize = 1 << 16;

/// One capture file: its bytes not written yet, and whether the file was created.
struct File {
    pcap: PcapBuffer,
    created: bool,
}

impl File {
    fn new(pcap: PcapBuffer) -> Self {
        File {
            pcap,
            created: false,
        }
    }

    /// Appends what is buffered to `path` (created, or emptied, the first time).
    fn flush(&mut self, path: &Path) -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.created)
            .truncate(!self.created)
            .open(path)?;
        self.created = true;
        f.write_all(self.pcap.as_bytes())?;
        self.pcap.clear_bytes();
        Ok(())
    }
}

/// The pcap writer of `podnet run --pcap DIR`.
pub struct PcapFiles {
    dir: PathBuf,
    /// Per interface id, with its file name.
    ifaces: Vec<Option<(File, PathBuf)>>,
    any: File,
    error: Option<String>,
    /// Bytes of a capture kept before they are appended ([`FLUSH_AT`]).
    flush_at: usize,
}

impl PcapFiles {
    /// Writes into `dir` (created if missing).
    pub fn new(dir: &Path) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::input(format!("{}: {e}", dir.display())))?;
        Ok(PcapFiles {
            dir: dir.to_path_buf(),
            ifaces: Vec::new(),
            any: File::new(PcapBuffer::linux_cooked()),
            error: None,
            flush_at: FLUSH_AT,
        })
    }

    fn iface(&mut self, id: usize, name: &str) -> &mut (File, PathBuf) {
        if self.ifaces.len() <= id {
            self.ifaces.resize_with(id + 1, || None);
        }
        self.ifaces[id].get_or_insert_with(|| {
            let path = self.dir.join(format!("{}.pcap", name.replace('/', "_")));
            (File::new(PcapBuffer::ethernet()), path)
        })
    }

    fn note(&mut self, path: &Path, r: std::io::Result<()>) {
        if let (Err(e), None) = (r, &self.error) {
            self.error = Some(format!("{}: {e}", path.display()));
        }
    }

    /// Writes what is left, and a capture (header only) for every interface of `ifaces` that
    /// saw no frame; returns the number of files, or the first write error.
    pub fn finish(&mut self, ifaces: &Ifaces) -> Result<usize, Failure> {
        for (id, name) in ifaces.iter() {
            let (file, path) = self.iface(id.0 as usize, name);
            let r = file.flush(path);
            let path = path.clone();
            self.note(&path, r);
        }
        let path = self.dir.join("any.pcap");
        let r = self.any.flush(&path);
        self.note(&path, r);
        match self.error.take() {
            Some(e) => Err(Failure::input(e)),
            None => Ok(ifaces.len() + 1),
        }
    }
}

impl Observer for PcapFiles {
    fn observe(&mut self, ifaces: &Ifaces, time: Instant, event: EventRef<'_>) {
        let (iface, frame, outgoing) = match event {
            EventRef::Sent { iface, frame } => (iface, frame, true),
            EventRef::Received { iface, frame } => (iface, frame, false),
            _ => return,
        };
        if self.error.is_some() {
            return;
        }
        let flush_at = self.flush_at;
        let (file, path) = self.iface(iface.0 as usize, ifaces.name(iface));
        file.pcap.record(time, frame);
        if file.pcap.as_bytes().len() >= flush_at {
            let r = file.flush(path);
            let path = path.clone();
            self.note(&path, r);
        }
        self.any.pcap.record_cooked(time, outgoing, frame);
        if self.any.pcap.as_bytes().len() >= self.flush_at {
            let path = self.dir.join("any.pcap");
            let r = self.any.flush(&path);
            self.note(&path, r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use podnet_scenario::session::Session;

    /// The files written as frames pass are the in-memory captures of a fully recorded run.
    #[test]
    fn streamed_pcaps_are_the_in_memory_pcaps() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/vxlan.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let sc = podnet_scenario::load_str("vxlan.yaml", &text)
            .unwrap()
            .scenario;
        let limit = podnet::Duration::from_secs(30);

        let mut full = sc.clone();
        full.config.trace = podnet::TraceConfig::default();
        full.config.trace.pcap = true;
        let mut recorded = Session::new(full).unwrap();
        recorded.run(limit).unwrap();

        let dir = std::env::temp_dir().join(format!("podnet-pcap-files-{}", std::process::id()));
        let mut files = PcapFiles::new(&dir).unwrap();
        // Small, so that every file is appended to many times.
        files.flush_at = 100;
        let mut quiet = sc;
        quiet.config.trace = podnet::TraceConfig::off();
        let mut streamed = Session::new_observed(quiet, vec![Box::new(files)]).unwrap();
        streamed.run(limit).unwrap();
        let ifaces = streamed.cluster.trace().iface_table().clone();
        let files = streamed.cluster.observer_mut::<PcapFiles>().unwrap();
        assert_eq!(files.finish(&ifaces).unwrap(), ifaces.len() + 1);

        assert!(streamed.cluster.trace().events().is_empty());
        let mut names: Vec<String> = ifaces.iter().map(|(_, n)| n.to_string()).collect();
        names.push("any".to_string());
        for name in names {
            let file = dir.join(format!("{}.pcap", name.replace('/', "_")));
            let got = std::fs::read(&file).unwrap();
            assert_eq!(got, recorded.pcap(&name).unwrap(), "{name}");
        }
        assert!(std::fs::read(dir.join("any.pcap")).unwrap().len() > 1000);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
