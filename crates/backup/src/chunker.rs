//! Content-defined chunking over a reader with bounded memory.
//!
//! FastCDC (2020) with the repository's seeded gear table finds cut points;
//! this wrapper keeps one buffer of twice the maximum chunk size and moves
//! the unread tail to its front only when a full chunk no longer fits, so
//! each byte is copied about once.

use std::io::Read;

use fastcdc::v2020::{MASKS, Normalization, cut_gear, get_gear_with_seed, logarithm2};

use crate::format::ChunkerParams;

/// Splits a stream into chunks.
pub struct Chunker<R> {
    reader: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    min: usize,
    avg: usize,
    max: usize,
    masks: [u64; 4],
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl<R: Read> Chunker<R> {
    pub fn new(reader: R, params: &ChunkerParams) -> Self {
        let bits = logarithm2(params.avg);
        let normalization = Normalization::Level1.bits();
        let mask_s = MASKS[(bits + normalization) as usize];
        let mask_l = MASKS[(bits - normalization) as usize];
        let (gear, gear_ls) = get_gear_with_seed(params.seed);
        Self {
            reader,
            buf: vec![0; 2 * params.max as usize],
            start: 0,
            end: 0,
            eof: false,
            min: params.min as usize,
            avg: params.avg as usize,
            max: params.max as usize,
            masks: [mask_s, mask_l, mask_s << 1, mask_l << 1],
            gear,
            gear_ls,
        }
    }

    fn fill(&mut self) -> std::io::Result<()> {
        if self.eof || self.end - self.start >= self.max {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.fill()?;
        if self.start == self.end {
            return Ok(None);
        }
        let [mask_s, mask_l, mask_s_ls, mask_l_ls] = self.masks;
        let (_, len) = cut_gear(
            &self.buf[self.start..self.end],
            self.min,
            self.avg,
            self.max,
            mask_s,
            mask_l,
            mask_s_ls,
            mask_l_ls,
            &self.gear,
            &self.gear_ls,
        );
        let len = len.max(1).min(self.end - self.start);
        let chunk = self.buf[self.start..self.start + len].to_vec();
        self.start += len;
        Ok(Some(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const PARAMS: ChunkerParams = ChunkerParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
        seed: 42,
    };

    fn chunks(data: &[u8], params: &ChunkerParams) -> Vec<Vec<u8>> {
        let mut chunker = Chunker::new(data, params);
        let mut out = Vec::new();
        while let Some(c) = chunker.next_chunk().unwrap() {
            out.push(c);
        }
        out
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let mut data = vec![0u8; 3_000_000];
        rand::rngs::StdRng::seed_from_u64(1).fill(&mut data[..]);
        let parts = chunks(&data, &PARAMS);
        assert_eq!(parts.concat(), data);
        for part in &parts[..parts.len() - 1] {
            assert!(part.len() >= 16 * 1024 && part.len() <= 256 * 1024);
        }
        assert!(chunks(&[], &PARAMS).is_empty());
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let mut data = vec![0u8; 2_000_000];
        rand::rngs::StdRng::seed_from_u64(2).fill(&mut data[..]);
        let before = chunks(&data, &PARAMS);
        data.splice(1_000_000..1_000_000, *b"inserted");
        let after = chunks(&data, &PARAMS);
        let shared = after.iter().filter(|c| before.contains(c)).count();
        assert!(
            shared + 3 >= before.len(),
            "{shared} of {} kept",
            before.len()
        );
    }

    #[test]
    fn the_seed_moves_cut_points() {
        let mut data = vec![0u8; 2_000_000];
        rand::rngs::StdRng::seed_from_u64(3).fill(&mut data[..]);
        let other = ChunkerParams { seed: 43, ..PARAMS };
        assert_ne!(
            chunks(&data, &PARAMS)[0].len(),
            chunks(&data, &other)[0].len()
        );
    }
}
