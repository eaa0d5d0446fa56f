import gc

from bot.garbage import YOUNG_THRESHOLD, tune_after_start_up


def test_start_up_is_frozen_and_short_lived_objects_die_young() -> None:
    threshold = gc.get_threshold()
    try:
        tune_after_start_up()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
