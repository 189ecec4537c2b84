from vmflow.cli import base
from vmflow.persistence import api, migration


class DbSync(base.ShowOne):
    """Create or upgrade the database schema (TaskFlow tables included)."""

    def take_action(self, parsed_args):
        engine = api.get_engine()
        revision = migration.db_sync(engine)
        return base.as_show({
            "database": api.display_url(engine),
            "revision": revision})


class DbVersion(base.ShowOne):
    """Show the schema revision of the database and the code's head."""

    def take_action(self, parsed_args):
        engine = api.get_engine()
        return base.as_show({
            "database": api.display_url(engine),
            "revision": migration.current_revision(engine),
            "head": migration.head_revision()})
