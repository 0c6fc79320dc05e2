"""
docs/client.md's snippets run as written.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from twisted.trial.unittest import TestCase

from .. import support


class DocsTests(TestCase):
    """docs/client.md's snippets run as written."""

    timeout = 120

    def test_snippets_run(self):
        """
        Every Python snippet of docs/client.md runs in a fresh interpreter,
        imports included (nothing in them connects; HOME is a temporary
        directory).
        """
        with open(os.path.join(support.ROOT, "docs", "client.md")) as f:
            snippets = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.assertTrue(snippets)
        tmp = os.path.abspath(self.mktemp())
        env = support.environment(tmp)
        env["HOME"] = os.path.join(tmp, "home")
        for snippet in snippets:
            out = subprocess.run(
                [sys.executable, "-c", snippet],
                cwd=support.ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            self.assertEqual(out.returncode, 0, out.stderr)
