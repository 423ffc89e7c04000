"""File-exchange connector: an FTP/FTPS client of the exchange folders (``FtpExchangeClient``)
configured by ``KEFU_FTP_URL`` (``parse_ftp_url``), and the operations BPMN service tasks call
(``ftp.upload``, ``ftp.check_ack``). Standard library only; imports neither Flask nor the engine.
"""

from connectors.ftp.client import MARKS, MAX_NAME, FtpExchangeClient, check_name
from connectors.ftp.config import FtpConfig, parse_ftp_url
from connectors.ftp.operations import operations

__all__ = ["MARKS", "MAX_NAME", "FtpConfig", "FtpExchangeClient", "check_name", "operations", "parse_ftp_url"]
