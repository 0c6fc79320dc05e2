"""
Several ticket key files follow nginx's rule, proven with C{openssl
s_client}: a ticket issued under C{old.key} resumes on a server given
C{ticketKeys=new.key,old.key} (and is renewed under C{new.key}), and new
tickets are issued under C{new.key}.  Before, only the last file was kept.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from resumetls import TicketKey
from resumetls.keys.files import write_nginx_key

from .. import support
from ..support import s_client


class NginxRuleTests(TestCase):
    timeout = 60

    async def serve(self, *key_files):
        cert, key = support.write_pem(
            os.path.abspath(self.mktemp()), *support.certificate("ec")
        )
        endpoint = serverFromString(
            reactor,
            f"resumetls:0:interface=127.0.0.1:certKey={cert}:privateKey={key}"
            f":sessionIds=no:ticketKeys={','.join(key_files)}",
        )
        port = await endpoint.listen(support.InfoFactory())
        self.addCleanup(port.stopListening)
        return port.getHost().port, endpoint

    def key_file(self, name):
        key = TicketKey.generate()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, name)
        write_nginx_key(path, key)
        return path, key

    def test_first_file_encrypts(self):
        async def run():
            new_path, new = self.key_file("new.key")
            old_path, old = self.key_file("old.key")
            for flags in (["-tls1_2"], ["-tls1_3"]):
                under_old = os.path.abspath(self.mktemp())
                port, _ = await self.serve(old_path)
                first = await s_client(port, None, under_old, *flags)
                self.assertFalse(first["reused"])
                self.assertEqual(first["tickets"][-1][:16], old.name, flags)

                port, endpoint = await self.serve(new_path, old_path)
                self.assertEqual(endpoint.key_source.paths, (new_path, old_path))
                again = await s_client(port, under_old, None, *flags)
                self.assertTrue(again["reused"], flags)
                # renewed: the ticket it got is under new.key
                self.assertEqual(again["tickets"][-1][:16], new.name, flags)
                fresh = await s_client(port, None, None, *flags)
                self.assertFalse(fresh["reused"])
                self.assertEqual(fresh["tickets"][-1][:16], new.name, flags)
                stats = endpoint.context_factory.stats()
                self.assertEqual((stats.tickets_renewed, stats.tickets_rejected), (1, 0))

        return ensureDeferred(run())
