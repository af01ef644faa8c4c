//! The append-only journal: every change to alerts, silences and escalations, replayed at start.
//!
//! A record is `length (u32 LE) | CRC-32 of the payload (u32 LE) | payload (JSON)`. A crash mid-write
//! leaves a last record that is short or fails its checksum: replay stops there and the file is cut back
//! to the last whole record, so nothing is lost but the torn record.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// CRC-32 (IEEE), for torn-write detection.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The largest record replay accepts; anything longer is a torn length field.
const MAX_RECORD: u32 = 16 << 20;

/// An open journal, appending.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    sync: bool,
    records: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads its whole records; a torn tail is cut off.
    pub(crate) fn open(path: &Path, sync: bool) -> io::Result<(Journal, Vec<Value>, bool)> {
        let mut file =
            OpenOptions::new().read(true).create(true).append(false).write(true).truncate(false).open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while let Some(header) = bytes.get(at..at + 8) {
            let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            if length > MAX_RECORD {
                break;
            }
            let Some(payload) = bytes.get(at + 8..at + 8 + length as usize) else { break };
            if crc32(payload) != crc {
                break;
            }
            let Ok(record) = serde_json::from_slice::<Value>(payload) else { break };
            records.push(record);
            at += 8 + length as usize;
        }
        let torn = at < bytes.len();
        if torn {
            file.set_len(at as u64)?;
        }
        file.seek(SeekFrom::Start(at as u64))?;
        let count = records.len() as u64;
        Ok((Journal { path: path.to_owned(), file: BufWriter::new(file), sync, records: count }, records, torn))
    }

    /// Appends one record and flushes it (and syncs, when asked).
    pub(crate) fn append(&mut self, record: &Value) -> io::Result<()> {
        let payload = record.to_string();
        let length = u32::try_from(payload.len()).map_err(|_| io::Error::other("a journal record over 4 GiB"))?;
        self.file.write_all(&length.to_le_bytes())?;
        self.file.write_all(&crc32(payload.as_bytes()).to_le_bytes())?;
        self.file.write_all(payload.as_bytes())?;
        self.file.flush()?;
        if self.sync {
            self.file.get_ref().sync_data()?;
        }
        self.records += 1;
        Ok(())
    }

    /// Records written or replayed since the last compaction.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Replaces the journal with `records` (the current state), atomically: written beside it, synced,
    /// then renamed over it.
    pub(crate) fn compact(&mut self, records: &[Value]) -> io::Result<()> {
        let temporary = self.path.with_extension("compacting");
        {
            let file = File::create(&temporary)?;
            let mut replacement =
                Journal { path: temporary.clone(), file: BufWriter::new(file), sync: false, records: 0 };
            for record in records {
                replacement.append(record)?;
            }
            replacement.file.get_ref().sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        let file = OpenOptions::new().append(true).open(&self.path)?;
        self.file = BufWriter::new(file);
        self.records = records.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }
}
