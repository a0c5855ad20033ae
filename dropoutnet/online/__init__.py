"""The online loop: what recall served (:mod:`.served_log`), what users did next
(:mod:`.metrics`, attribution and the daily online figures per version, arm and channel),
and simulated users to close the loop on synthetic data (:mod:`.simulate`)."""
