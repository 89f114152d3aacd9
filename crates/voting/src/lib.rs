//! # Voting: the tally rules and the decision window
//!
//! Pure functions and plain data, no I/O and no clock of their own, so every rule can be tested
//! exhaustively:
//!
//! * [`rules`]: [`rules::tally`] turns the ballots of one feature vector into a
//!   [`rules::Tally`] under one of three strategies, as the seed project defines them:
//!   - **majority**: scale up when *more than half of the expected models* vote up; a tie, a
//!     missing vote or an abstention is not a vote for action;
//!   - **unanimous**: scale up only when *every expected model* votes up;
//!   - **weighted**: Σ wᵢ·pᵢ / Σ wᵢ over the non-abstaining votes received, scale up when the
//!     score is strictly above the threshold and at least `min_quorum` models voted.
//!
//!   [`rules::safe_one_fewer`] says whether the models find one replica fewer safe.
//! * [`ballot_box`]: [`ballot_box::BallotBox`] gathers the votes of each vector until every
//!   expected model has voted or the decision window has passed, decides each vector exactly
//!   once, and sorts out duplicate, late and unknown-model votes.
#![deny(missing_docs)]

pub mod ballot_box;
pub mod rules;

pub use ballot_box::{BallotBox, BoxCounters, Offer, Ready};
pub use rules::{safe_one_fewer, tally, ModelBallot, Tally, VotingConfig, VotingConfigError};
