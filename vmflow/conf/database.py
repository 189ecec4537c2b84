from oslo_config import cfg

database_group = cfg.OptGroup(
    "database", title="Database",
    help="Where application data and TaskFlow logbooks are stored.")

database_opts = [
    cfg.StrOpt("connection",
               secret=True,
               help="SQLAlchemy URL of the database, for example "
                    "postgresql+psycopg2://vmflow:SECRET@127.0.0.1/vmflow or "
                    "mysql+pymysql://vmflow:SECRET@127.0.0.1/vmflow. "
                    "Default: an SQLite file vmflow.sqlite under state_path."),
    cfg.BoolOpt("sqlite_synchronous_full",
                default=True,
                help="Use synchronous=FULL for SQLite in WAL mode (each "
                     "commit survives power loss). False uses NORMAL."),
    cfg.IntOpt("busy_timeout_seconds",
               default=30, min=1, max=86400,
               help="How long an SQLite writer waits for a lock."),
    cfg.IntOpt("pool_size",
               default=5, min=1, max=1000,
               help="Connections kept open per process (PostgreSQL/MySQL)."),
]


def register_opts(conf):
    conf.register_group(database_group)
    conf.register_opts(database_opts, group=database_group)


def list_opts():
    return {database_group: database_opts}
