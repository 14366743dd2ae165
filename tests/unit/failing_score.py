"""A score module whose run() fails, to prove the service answers 500 without a traceback."""
N_FEATURES = 10


def init(model_dir=None):
    pass


def run(data):
    raise RuntimeError("secret internal detail")
