"""./run check (fork_check.py) follows a fork's plugin into the server: the calls it makes through `setup(plugin)`
are checked as the server's Plugin takes them (a test of its own: only a fork with the server has plugins)."""

from test_fork_check import check

# A fork's plugin reaching a core helper each way it can, each call one argument short (as after the helper gained a
# required parameter): through the plugin object most of all, in setup and in a route.
PLUGIN = '''import server
from server import require_text


def setup(plugin):
    require_text("direct")
    server.require_text("through the module")
    plugin.require_text("through the plugin")
    plugin.helper_that_is_gone()

    @plugin.route("", methods="post")
    def add(title: str):
        return plugin.require_text(title)
'''


def test_a_plugin_call_through_the_plugin_object_is_checked(tmp_path):
    mine = tmp_path / "plugins/500_mine.py"
    mine.parent.mkdir()
    mine.write_text(PLUGIN)
    result = check(mine, env={"MYPY_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 1
    for line, message in [(6, 'Missing positional argument "what" in call to "require_text"'),
                          (7, 'Missing positional argument "what" in call to "require_text"'), (8, "Too few arguments"),
                          (9, '"Plugin" has no attribute "helper_that_is_gone"'), (13, "Too few arguments")]:
        assert f"  {mine}:{line}: error: {message}" in result.stderr
