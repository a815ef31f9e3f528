//! Who owns which frame slot, checked on both sides of the connection.
//!
//! A slot belongs to exactly one side at a time. After a [`crate::SurfaceConfig`] every slot
//! belongs to the game. The game draws into one it owns and queues it ([`crate::FrameQueued`]):
//! from then on it belongs to the host, which acquires it (reads it) and eventually releases it
//! (`SlotReleased`), giving it back. Queueing or releasing a slot one does not own is a protocol
//! error that closes the session: it is how a confused or hostile game would make the host read
//! a frame while it is being written.

use crate::error::SlotError;
use crate::message::{FrameQueued, Role};

/// The side that owns a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotOwner {
    /// The game may draw into it.
    Game,
    /// The host may read it; the game must not touch it.
    Host,
}

/// Slot ownership for one surface configuration; both endpoints keep one and apply every
/// message to it.
#[derive(Debug, Clone)]
pub struct SlotTable {
    config_id: u32,
    owners: Vec<SlotOwner>,
    last_seq: Option<u64>,
}

impl SlotTable {
    /// A new configuration with `count` slots, all owned by the game.
    pub fn new(config_id: u32, count: u8) -> Self {
        SlotTable {
            config_id,
            owners: vec![SlotOwner::Game; usize::from(count)],
            last_seq: None,
        }
    }

    /// The configuration this table tracks.
    pub fn config_id(&self) -> u32 {
        self.config_id
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether the table has no slots (never true for a valid configuration).
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Current owner of `slot`, if it exists.
    pub fn owner(&self, slot: u8) -> Option<SlotOwner> {
        self.owners.get(usize::from(slot)).copied()
    }

    /// Slots currently owned by the game.
    pub fn game_owned(&self) -> impl Iterator<Item = u8> + '_ {
        self.owners
            .iter()
            .enumerate()
            .filter(|(_, o)| **o == SlotOwner::Game)
            .map(|(i, _)| i as u8)
    }

    fn check(&self, config_id: u32, slot: u8) -> Result<SlotOwner, SlotError> {
        if config_id != self.config_id {
            return Err(SlotError::UnknownConfig {
                got: config_id,
                current: self.config_id,
            });
        }
        self.owner(slot).ok_or(SlotError::OutOfRange {
            slot,
            count: self.owners.len() as u8,
        })
    }

    /// Applies a queued frame: the game hands `slot` to the host.
    pub fn queue(&mut self, frame: &FrameQueued) -> Result<(), SlotError> {
        let owner = self.check(frame.config_id, frame.slot)?;
        if owner != SlotOwner::Game {
            return Err(SlotError::NotOwned {
                slot: frame.slot,
                owner,
                actor: Role::Game,
            });
        }
        if let Some(last) = self.last_seq {
            if frame.seq <= last {
                return Err(SlotError::SequenceRegressed {
                    got: frame.seq,
                    last,
                });
            }
        }
        self.last_seq = Some(frame.seq);
        self.owners[usize::from(frame.slot)] = SlotOwner::Host;
        Ok(())
    }

    /// Applies a release: the host gives `slot` back to the game.
    pub fn release(&mut self, config_id: u32, slot: u8) -> Result<(), SlotError> {
        let owner = self.check(config_id, slot)?;
        if owner != SlotOwner::Host {
            return Err(SlotError::NotOwned {
                slot,
                owner,
                actor: Role::Host,
            });
        }
        self.owners[usize::from(slot)] = SlotOwner::Game;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fq(slot: u8, seq: u64) -> FrameQueued {
        FrameQueued {
            config_id: 1,
            slot,
            seq,
            pts_ns: 0,
            sent_ns: 0,
        }
    }

    #[test]
    fn ownership_moves_back_and_forth() {
        let mut t = SlotTable::new(1, 3);
        assert_eq!(t.game_owned().collect::<Vec<_>>(), vec![0, 1, 2]);
        t.queue(&fq(1, 1)).unwrap();
        assert_eq!(t.owner(1), Some(SlotOwner::Host));
        t.release(1, 1).unwrap();
        assert_eq!(t.owner(1), Some(SlotOwner::Game));
    }

    #[test]
    fn every_rule_is_enforced() {
        let mut t = SlotTable::new(1, 3);
        assert_eq!(
            t.queue(&fq(3, 1)),
            Err(SlotError::OutOfRange { slot: 3, count: 3 })
        );
        assert!(matches!(t.release(1, 0), Err(SlotError::NotOwned { .. })));
        t.queue(&fq(0, 5)).unwrap();
        assert!(matches!(
            t.queue(&fq(0, 6)),
            Err(SlotError::NotOwned { .. })
        ));
        assert_eq!(
            t.queue(&fq(1, 5)),
            Err(SlotError::SequenceRegressed { got: 5, last: 5 })
        );
        assert!(matches!(
            t.queue(&FrameQueued {
                config_id: 2,
                ..fq(1, 9)
            }),
            Err(SlotError::UnknownConfig { got: 2, current: 1 })
        ));
    }
}
