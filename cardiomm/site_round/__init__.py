"""A site's part of a federated round, in the library: what client/ calls and translates to
and from Flower messages (client/tasks.py), as Flower's quickstart keeps ``task.py`` apart
from ``client_app.py``.

:class:`SiteRound` is the one entry point. Its :meth:`~SiteRound.train` takes the round's
global weights and the server's instructions and goes through the round's steps in order:

1. policy check: a run that breaks the site's privacy policy is refused before any data is
   read (:mod:`cardiomm.site_round.privacy`);
2. accountant: the run's DP-SGD steps so far, from the site's ledger (with a policy) or the
   history it kept between rounds;
3. data: the site's training slices, masks drawn from the round's seed
   (:mod:`cardiomm.site_round.data`);
4. calibration: the noise that makes the run's planned steps spend a target epsilon;
5. budget and ledger: the noise checked against the policy's minimum, the budget against
   one more step, then the round's steps charged to the ledger, before anything is built;
6. training and validation: the global model trained on the train split and scored on the
   val split (:mod:`cardiomm.site_round.training`, :func:`cardiomm.train.train_model`);
7. release: the new weights, the training numbers and the DP-SGD numbers the site may
   release (never its training loss), and the accountant's lists to keep.

:meth:`~SiteRound.evaluate` and :meth:`~SiteRound.score` give a model's official scores on
the validation split or on a set of files, per group (:mod:`cardiomm.site_round.evaluation`).
"""

from cardiomm.site_round.data import RoundInstructions, SiteDataError, SiteSplits
from cardiomm.site_round.evaluation import NetworkBuilder, Scores
from cardiomm.site_round.privacy import LedgerReport, PrivacyReport
from cardiomm.site_round.round import SiteRound
from cardiomm.site_round.training import TrainedRound

__all__ = [
    "LedgerReport",
    "NetworkBuilder",
    "PrivacyReport",
    "RoundInstructions",
    "Scores",
    "SiteDataError",
    "SiteRound",
    "SiteSplits",
    "TrainedRound",
]
