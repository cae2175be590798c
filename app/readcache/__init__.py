"""The polled-read cache: answers of the hot read endpoints kept until a row behind them
changes (it knows which tables each answer reads)."""
