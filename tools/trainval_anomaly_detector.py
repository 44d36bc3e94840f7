"""Train S3R on a dataset, or evaluate a checkpoint (--inference --resume PATH).

    python tools/trainval_anomaly_detector.py --dataset shanghaitech --version s3r-vad-0.1
    python tools/trainval_anomaly_detector.py --dataset shanghaitech --inference --resume checkpoint/shanghaitech_s3r_i3d_best.pth

Exit status: 0 done, 2 bad input (one line on stderr says what and where), 130/143 interrupted by
SIGINT/SIGTERM after saving the training state (continue with --resume <state file>).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root first

from anomaly.engine.runner import Run, TrainingInterrupted  # noqa: E402
from anomaly.errors import InputError  # noqa: E402
from anomaly.options import S3RArgumentParser  # noqa: E402
from config import load_dataset_config  # noqa: E402
from utils import fixation  # noqa: E402


def main(argv=None) -> int:
    args = S3RArgumentParser().parse_args(argv)
    try:
        config = load_dataset_config(args.dataset, args.root_path, args.dictionary_path)
        fixation(args.seed if args.seed > 0 else config.random_state)
        run = Run(args, config)
        if args.inference:
            run.infer()
        else:
            run.train()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as interruption:
        print(str(interruption), file=sys.stderr)
        return 128 + interruption.signal_number
    except KeyboardInterrupt:
        print("interrupted outside the training steps (during them, SIGINT saves the state first)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
