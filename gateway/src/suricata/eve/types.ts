/**
 * Suricata 7 EVE JSON event types, in Suricata's own field names.
 *
 * Field names and types follow Suricata's `etc/schema.json` (7.0 series). A parsed event
 * is an {@link EveRecord}: `event_type` is the discriminant (`'unknown'` for a type this
 * module does not know) and `raw` is Suricata's object itself, untouched, so nothing is
 * ever lost: every field Suricata wrote is still there under its own name, and
 * `JSON.stringify(record.raw)` gives back Suricata's line.
 *
 * What the parser checks (see parse.ts) is typed as required; everything else is typed
 * optional as Suricata documents it and is not checked. Every object type is open
 * (`[key: string]: unknown`): fields newer than the schema stay reachable.
 */

/** Any object in an EVE event: known fields typed, the rest reachable as `unknown`. */
export interface EveObject {
  readonly [key: string]: unknown;
}

/** `{hash, string}` fingerprints (JA3, JA3S, HASSH). */
export interface EveFingerprint extends EveObject {
  readonly hash?: string;
  readonly string?: string;
}

/** Fields every event may carry (the EVE "header"). */
export interface EveEnvelope extends EveObject {
  /** `2022-01-07T10:16:40.480073+0000`: microseconds and a UTC offset without colon. */
  readonly timestamp: string;
  readonly event_type: string;
  /** Flow identifier; Suricata keeps it below 2^51, so it is exact as a JS number. */
  readonly flow_id?: number;
  /** The flow that opened this one (FTP data, expectations). */
  readonly parent_id?: number;
  /** Packet number in the capture (pcap mode only). */
  readonly pcap_cnt?: number;
  readonly pcap_filename?: string;
  readonly in_iface?: string;
  readonly sensor_name?: string;
  readonly host?: string;
  readonly vlan?: readonly number[];
  readonly src_ip?: string;
  readonly src_port?: number;
  readonly dest_ip?: string;
  readonly dest_port?: number;
  /** `TCP`, `UDP`, `ICMP`, `IPV6-ICMP`, or a protocol number as a string. */
  readonly proto?: string;
  readonly ip_v?: number;
  readonly icmp_type?: number;
  readonly icmp_code?: number;
  readonly response_icmp_type?: number;
  readonly response_icmp_code?: number;
  readonly spi?: number;
  /** `wire/pcap`, `stream (flow timeout)`, ... */
  readonly pkt_src?: string;
  readonly tx_id?: number;
  readonly tx_guessed?: boolean;
  readonly app_proto?: string;
  readonly app_proto_ts?: string;
  readonly app_proto_tc?: string;
  readonly app_proto_orig?: string;
  readonly app_proto_expected?: string;
  /** `to_server` or `to_client`. */
  readonly direction?: string;
  readonly community_id?: string;
  readonly log_level?: string;
  readonly stream?: number;
  readonly payload?: string;
  readonly payload_printable?: string;
  /** Base64 of the packet (alert `packet: yes`, tagged `packet` events). */
  readonly packet?: string;
  readonly packet_info?: EveObject & { readonly linktype?: number };
  readonly ether?: EveObject & {
    readonly src_mac?: string;
    readonly dest_mac?: string;
    readonly src_macs?: readonly string[];
    readonly dest_macs?: readonly string[];
  };
  readonly tunnel?: EveObject & {
    readonly src_ip?: string;
    readonly dest_ip?: string;
    readonly src_port?: number;
    readonly dest_port?: number;
    readonly proto?: string;
    readonly depth?: number;
    readonly pcap_cnt?: number;
    readonly pkt_src?: string;
  };
  readonly metadata?: EveMetadataInfo;
  readonly files?: readonly EveFileInfo[];
  readonly traffic?: EveObject & { readonly id?: readonly string[]; readonly label?: readonly string[] };
  readonly verdict?: EveObject & {
    readonly action?: string;
    readonly reject_target?: string;
    readonly reject?: readonly string[];
  };
}

/** Flowbits, flowvars, pktvars, flowints attached to an event. */
export interface EveMetadataInfo extends EveObject {
  readonly flowbits?: readonly string[];
  readonly flowvars?: readonly EveObject[];
  readonly pktvars?: readonly EveObject[];
  readonly flowints?: EveObject;
}

/** One file of a transaction (`files[]`) or the body of a `fileinfo` event. */
export interface EveFileInfo extends EveObject {
  readonly filename?: string;
  readonly magic?: string;
  readonly gaps?: boolean;
  /** `CLOSED`, `TRUNCATED`, `ERROR`, `UNKNOWN`. */
  readonly state?: string;
  readonly md5?: string;
  readonly sha1?: string;
  readonly sha256?: string;
  readonly stored?: boolean;
  readonly storing?: boolean;
  readonly file_id?: number;
  readonly size?: number;
  readonly tx_id?: number;
  readonly start?: number;
  readonly end?: number;
  readonly sid?: readonly number[];
}

// ---- per-type bodies --------------------------------------------------------------

export interface AlertInfo extends EveObject {
  /** `allowed` or `blocked` (IPS dropped the packet). Checked. */
  readonly action: string;
  readonly gid?: number;
  /** Checked: an integer. */
  readonly signature_id: number;
  readonly rev?: number;
  readonly signature?: string;
  readonly category?: string;
  /** 1 is the most severe; Suricata defaults to 3. Checked: an integer. */
  readonly severity: number;
  readonly rule?: string;
  readonly xff?: string;
  readonly metadata?: Readonly<Record<string, readonly string[]>>;
  readonly source?: EveObject & { readonly ip?: string; readonly port?: number };
  readonly target?: EveObject & { readonly ip?: string; readonly port?: number };
}

export interface FlowInfo extends EveObject {
  readonly pkts_toserver?: number;
  readonly pkts_toclient?: number;
  readonly bytes_toserver?: number;
  readonly bytes_toclient?: number;
  readonly start?: string;
  readonly end?: string;
  readonly age?: number;
  /** `new`, `established`, `closed`, `bypassed`. */
  readonly state?: string;
  /** `timeout`, `forced`, `shutdown`. */
  readonly reason?: string;
  readonly alerted?: boolean;
  readonly action?: string;
  readonly bypass?: string;
  readonly bypassed?: EveObject;
  readonly src_ip?: string;
  readonly dest_ip?: string;
  readonly src_port?: number;
  readonly dest_port?: number;
}

export interface NetflowInfo extends EveObject {
  readonly pkts?: number;
  readonly bytes?: number;
  readonly start?: string;
  readonly end?: string;
  readonly age?: number;
  readonly min_ttl?: number;
  readonly max_ttl?: number;
}

export interface TcpInfo extends EveObject {
  readonly tcp_flags?: string;
  readonly tcp_flags_ts?: string;
  readonly tcp_flags_tc?: string;
  readonly syn?: boolean;
  readonly fin?: boolean;
  readonly rst?: boolean;
  readonly psh?: boolean;
  readonly ack?: boolean;
  readonly urg?: boolean;
  readonly ecn?: boolean;
  readonly cwr?: boolean;
  readonly state?: string;
}

export interface DropInfo extends EveObject {
  readonly len?: number;
  readonly tos?: number;
  readonly ttl?: number;
  readonly ipid?: number;
  readonly tcpseq?: number;
  readonly tcpack?: number;
  readonly tcpwin?: number;
  readonly syn?: boolean;
  readonly ack?: boolean;
  readonly psh?: boolean;
  readonly rst?: boolean;
  readonly urg?: boolean;
  readonly fin?: boolean;
  readonly tcpres?: number;
  readonly tcpurgp?: number;
  readonly icmp_id?: number;
  readonly icmp_seq?: number;
  readonly reason?: string;
}

export interface AnomalyInfo extends EveObject {
  /** `decode`, `stream` or `applayer`. Checked: a string. */
  readonly type: string;
  readonly event?: string;
  readonly code?: number;
  readonly layer?: string;
  readonly app_proto?: string;
}

export interface HttpHeader extends EveObject {
  readonly name?: string;
  readonly value?: string;
  readonly table_size_update?: number;
}

export interface HttpInfo extends EveObject {
  readonly hostname?: string;
  readonly http_port?: number;
  readonly url?: string;
  readonly http_user_agent?: string;
  readonly http_content_type?: string;
  readonly http_refer?: string;
  readonly http_method?: string;
  readonly protocol?: string;
  readonly status?: number;
  readonly redirect?: string;
  readonly length?: number;
  readonly xff?: string;
  readonly version?: string;
  readonly request_headers?: readonly HttpHeader[];
  readonly response_headers?: readonly HttpHeader[];
  readonly content_range?: EveObject & {
    readonly raw?: string;
    readonly start?: number;
    readonly end?: number;
    readonly size?: number;
  };
  readonly http2?: EveObject;
}

export interface DnsQuery extends EveObject {
  readonly type?: string;
  readonly id?: number;
  readonly rrname?: string;
  readonly rrtype?: string;
  readonly tx_id?: number;
  readonly opcode?: number;
  readonly z?: boolean;
}

export interface DnsAnswerRecord extends EveObject {
  readonly rrname?: string;
  readonly rrtype?: string;
  readonly ttl?: number;
  readonly rdata?: string;
}

export interface DnsInfo extends EveObject {
  /** 2 for the default format (7.0). */
  readonly version?: number;
  /** `query` or `answer`. */
  readonly type?: string;
  readonly id?: number;
  readonly flags?: string;
  readonly qr?: boolean;
  readonly aa?: boolean;
  readonly rd?: boolean;
  readonly ra?: boolean;
  readonly z?: boolean;
  readonly opcode?: number;
  readonly rcode?: string;
  readonly rrname?: string;
  readonly rrtype?: string;
  readonly tx_id?: number;
  readonly query?: readonly DnsQuery[];
  readonly answers?: readonly DnsAnswerRecord[];
  readonly authorities?: readonly DnsAnswerRecord[];
  readonly additionals?: readonly DnsAnswerRecord[];
  readonly grouped?: Readonly<Record<string, readonly unknown[]>>;
  readonly answer?: EveObject;
}

export interface TlsInfo extends EveObject {
  readonly subject?: string;
  readonly issuerdn?: string;
  readonly serial?: string;
  readonly fingerprint?: string;
  readonly sni?: string;
  readonly version?: string;
  readonly notbefore?: string;
  readonly notafter?: string;
  readonly session_resumed?: boolean;
  readonly from_proto?: string;
  readonly ja3?: EveFingerprint;
  readonly ja3s?: EveFingerprint;
  readonly certificate?: string;
  readonly chain?: readonly string[];
}

export interface QuicInfo extends EveObject {
  readonly version?: string;
  readonly sni?: string;
  readonly ua?: string;
  readonly cyu?: readonly EveFingerprint[];
  readonly ja3?: EveFingerprint;
  readonly ja3s?: EveFingerprint;
  readonly extensions?: readonly EveObject[];
}

export interface SshHost extends EveObject {
  readonly proto_version?: string;
  readonly software_version?: string;
  readonly hassh?: EveFingerprint;
}

export interface SshInfo extends EveObject {
  readonly client?: SshHost;
  readonly server?: SshHost;
}

export interface SmtpInfo extends EveObject {
  readonly helo?: string;
  readonly mail_from?: string;
  readonly rcpt_to?: readonly string[];
}

export interface EmailInfo extends EveObject {
  readonly status?: string;
  readonly from?: string;
  readonly to?: readonly string[];
  readonly cc?: readonly string[];
  readonly subject?: string;
  readonly subject_md5?: string;
  readonly body_md5?: string;
  readonly attachment?: readonly string[];
  readonly url?: readonly string[];
}

export interface DhcpInfo extends EveObject {
  /** `request` or `reply`. */
  readonly type?: string;
  readonly id?: number;
  readonly client_mac?: string;
  readonly assigned_ip?: string;
  readonly client_ip?: string;
  readonly relay_ip?: string;
  readonly next_server_ip?: string;
  readonly dhcp_type?: string;
  readonly client_id?: string;
  readonly hostname?: string;
  readonly lease_time?: number;
  readonly renewal_time?: number;
  readonly rebinding_time?: number;
  readonly subnet_mask?: string;
  readonly routers?: readonly string[];
  readonly dns_servers?: readonly string[];
  readonly params?: readonly string[];
}

export interface StatsInfo extends EveObject {
  /** Seconds since Suricata started. */
  readonly uptime?: number;
  readonly capture?: EveObject;
  readonly decoder?: EveObject;
  readonly flow?: EveObject;
  readonly defrag?: EveObject;
  readonly detect?: EveObject;
  readonly app_layer?: EveObject;
  readonly tcp?: EveObject;
  readonly ips?: EveObject;
}

export interface FtpInfo extends EveObject {
  readonly command?: string;
  readonly command_data?: string;
  readonly command_truncated?: boolean;
  readonly reply?: readonly string[];
  readonly completion_code?: readonly string[];
  readonly reply_received?: string;
  readonly reply_truncated?: boolean;
  readonly dynamic_port?: number;
  readonly mode?: string;
}

export interface FtpDataInfo extends EveObject {
  readonly filename?: string;
  readonly command?: string;
}

export interface SmbInfo extends EveObject {
  readonly id?: number;
  readonly dialect?: string;
  readonly command?: string;
  readonly status?: string;
  readonly status_code?: string;
  readonly session_id?: number;
  readonly tree_id?: number;
  readonly filename?: string;
  readonly share?: string;
  readonly share_type?: string;
  readonly named_pipe?: string;
  readonly fuid?: string;
  readonly disposition?: string;
  readonly access?: string;
  readonly size?: number;
  readonly client_dialects?: readonly string[];
  readonly client_guid?: string;
  readonly server_guid?: string;
  readonly dcerpc?: EveObject;
  readonly ntlmssp?: EveObject & { readonly domain?: string; readonly user?: string; readonly host?: string };
  readonly kerberos?: EveObject & { readonly realm?: string; readonly snames?: readonly string[] };
}

export interface NfsInfo extends EveObject {
  readonly version?: number;
  readonly procedure?: string;
  readonly filename?: string;
  readonly hhash?: string;
  readonly id?: number;
  readonly file_tx?: boolean;
  readonly type?: string;
  readonly status?: string;
}

export interface Krb5Info extends EveObject {
  readonly msg_type?: string;
  readonly cname?: string;
  readonly realm?: string;
  readonly sname?: string;
  readonly encryption?: string;
  readonly weak_encryption?: boolean;
  readonly failed_request?: string;
  readonly error_code?: string;
}

export interface IkeInfo extends EveObject {
  readonly version_major?: number;
  readonly version_minor?: number;
  readonly init_spi?: string;
  readonly resp_spi?: string;
  readonly message_id?: number;
  readonly exchange_type?: number;
  readonly exchange_type_verbose?: string;
  readonly role?: string;
  readonly payload?: readonly string[];
  readonly alg_enc?: string;
  readonly alg_hash?: string;
  readonly alg_auth?: string;
  readonly alg_dh?: string;
  readonly ikev1?: EveObject;
  readonly ikev2?: EveObject;
}

export interface RdpInfo extends EveObject {
  readonly tx_id?: number;
  readonly event_type?: string;
  readonly cookie?: string;
  readonly client?: EveObject;
  readonly channels?: readonly string[];
}

export interface SipInfo extends EveObject {
  readonly method?: string;
  readonly uri?: string;
  readonly version?: string;
  readonly request_line?: string;
  readonly response_line?: string;
  readonly code?: string;
  readonly reason?: string;
}

export interface SnmpInfo extends EveObject {
  readonly version?: number;
  readonly pdu_type?: string;
  readonly community?: string;
  readonly usm?: string;
  readonly vars?: readonly string[];
}

export interface TftpInfo extends EveObject {
  readonly packet?: string;
  readonly file?: string;
  readonly mode?: string;
}

export interface MqttInfo extends EveObject {
  readonly connect?: EveObject;
  readonly connack?: EveObject;
  readonly publish?: EveObject;
  readonly subscribe?: EveObject;
  readonly suback?: EveObject;
  readonly unsubscribe?: EveObject;
  readonly unsuback?: EveObject;
  readonly disconnect?: EveObject;
}

export interface Http2Info extends EveObject {
  readonly stream_id?: number;
  readonly request?: EveObject;
  readonly response?: EveObject;
}

export interface RfbInfo extends EveObject {
  readonly server_protocol_version?: EveObject & { readonly major?: string; readonly minor?: string };
  readonly client_protocol_version?: EveObject & { readonly major?: string; readonly minor?: string };
  readonly authentication?: EveObject;
  readonly screen_shared?: boolean;
  readonly framebuffer?: EveObject;
}

export interface PgsqlInfo extends EveObject {
  readonly tx_id?: number;
  readonly request?: EveObject;
  readonly response?: EveObject;
}

export interface DcerpcInfo extends EveObject {
  readonly request?: string;
  readonly response?: string;
  readonly call_id?: number;
  readonly rpc_version?: string;
  readonly interfaces?: readonly EveObject[];
  readonly req?: EveObject;
  readonly res?: EveObject;
}

export interface ModbusInfo extends EveObject {
  readonly id?: number;
  readonly request?: EveObject;
  readonly response?: EveObject;
}

export interface Dnp3Info extends EveObject {
  readonly type?: string;
  readonly src?: number;
  readonly dst?: number;
  readonly request?: EveObject;
  readonly response?: EveObject;
}

export interface BittorrentDhtInfo extends EveObject {
  readonly transaction_id?: string;
  readonly client_version?: string;
  readonly request_type?: string;
  readonly request?: EveObject;
  readonly response?: EveObject;
  readonly error?: EveObject;
}

export interface FrameInfo extends EveObject {
  readonly type?: string;
  readonly id?: number;
  readonly direction?: string;
  readonly stream_offset?: number;
  readonly length?: number;
  readonly complete?: boolean;
  readonly payload?: string;
  readonly payload_printable?: string;
  readonly tx_id?: number;
}

export interface EngineInfo extends EveObject {
  readonly message?: string;
  readonly error?: string;
  readonly error_code?: number;
  readonly module?: string;
  readonly thread_name?: string;
}

export interface TemplateInfo extends EveObject {
  readonly request?: string;
  readonly response?: string;
}

// ---- raw events per type ----------------------------------------------------------

/** Transaction-level app-layer data Suricata may attach to alerts and fileinfo events. */
interface AppLayerFields {
  readonly http?: HttpInfo;
  readonly dns?: DnsInfo;
  readonly tls?: TlsInfo;
  readonly quic?: QuicInfo;
  readonly ssh?: SshInfo;
  readonly smtp?: SmtpInfo;
  readonly email?: EmailInfo;
  readonly ftp?: FtpInfo;
  readonly ftp_data?: FtpDataInfo;
  readonly smb?: SmbInfo;
  readonly nfs?: NfsInfo;
  readonly krb5?: Krb5Info;
  readonly ike?: IkeInfo;
  readonly rdp?: RdpInfo;
  readonly sip?: SipInfo;
  readonly snmp?: SnmpInfo;
  readonly tftp?: TftpInfo;
  readonly mqtt?: MqttInfo;
  readonly http2?: Http2Info;
  readonly rfb?: RfbInfo;
  readonly pgsql?: PgsqlInfo;
  readonly dcerpc?: DcerpcInfo;
  readonly modbus?: ModbusInfo;
  readonly dnp3?: Dnp3Info;
  readonly bittorrent_dht?: BittorrentDhtInfo;
  readonly dhcp?: DhcpInfo;
  readonly frame?: FrameInfo;
}

export type AlertRaw = EveEnvelope &
  AppLayerFields & {
    readonly event_type: 'alert';
    readonly alert: AlertInfo;
    readonly flow?: FlowInfo;
    readonly tcp?: TcpInfo;
  };
export type DropRaw = EveEnvelope & {
  readonly event_type: 'drop';
  readonly drop: DropInfo;
  readonly alert?: Partial<AlertInfo>;
};
export type AnomalyRaw = EveEnvelope & { readonly event_type: 'anomaly'; readonly anomaly: AnomalyInfo };
export type FlowRaw = EveEnvelope & {
  readonly event_type: 'flow';
  readonly flow: FlowInfo;
  readonly tcp?: TcpInfo;
};
export type NetflowRaw = EveEnvelope & {
  readonly event_type: 'netflow';
  readonly netflow: NetflowInfo;
  readonly tcp?: TcpInfo;
};
export type StatsRaw = EveEnvelope & { readonly event_type: 'stats'; readonly stats: StatsInfo };
export type FileinfoRaw = EveEnvelope &
  AppLayerFields & { readonly event_type: 'fileinfo'; readonly fileinfo: EveFileInfo };
export type PacketRaw = EveEnvelope & { readonly event_type: 'packet'; readonly packet: string };
export type MetadataRaw = EveEnvelope & { readonly event_type: 'metadata' };
export type SmtpRaw = EveEnvelope & {
  readonly event_type: 'smtp';
  readonly smtp: SmtpInfo;
  readonly email?: EmailInfo;
};
export type Http2Raw = EveEnvelope & {
  readonly event_type: 'http2';
  readonly http2?: Http2Info;
  readonly http?: HttpInfo;
};

/** An app-layer event whose body sits under the key named like its type. */
export type AppRaw<T extends string, B> = EveEnvelope & { readonly event_type: T } & { readonly [K in T]: B };

export type HttpRaw = AppRaw<'http', HttpInfo>;
export type DnsRaw = AppRaw<'dns', DnsInfo>;
export type TlsRaw = AppRaw<'tls', TlsInfo>;
export type QuicRaw = AppRaw<'quic', QuicInfo>;
export type SshRaw = AppRaw<'ssh', SshInfo>;
export type DhcpRaw = AppRaw<'dhcp', DhcpInfo>;
export type FtpRaw = AppRaw<'ftp', FtpInfo>;
export type FtpDataRaw = AppRaw<'ftp_data', FtpDataInfo>;
export type SmbRaw = AppRaw<'smb', SmbInfo>;
export type NfsRaw = AppRaw<'nfs', NfsInfo>;
export type Krb5Raw = AppRaw<'krb5', Krb5Info>;
export type IkeRaw = AppRaw<'ike', IkeInfo>;
export type RdpRaw = AppRaw<'rdp', RdpInfo>;
export type SipRaw = AppRaw<'sip', SipInfo>;
export type SnmpRaw = AppRaw<'snmp', SnmpInfo>;
export type TftpRaw = AppRaw<'tftp', TftpInfo>;
export type MqttRaw = AppRaw<'mqtt', MqttInfo>;
export type RfbRaw = AppRaw<'rfb', RfbInfo>;
export type PgsqlRaw = AppRaw<'pgsql', PgsqlInfo>;
export type DcerpcRaw = AppRaw<'dcerpc', DcerpcInfo>;
export type ModbusRaw = AppRaw<'modbus', ModbusInfo>;
export type Dnp3Raw = AppRaw<'dnp3', Dnp3Info>;
export type BittorrentDhtRaw = AppRaw<'bittorrent_dht', BittorrentDhtInfo>;
export type FrameRaw = AppRaw<'frame', FrameInfo>;
export type EngineRaw = AppRaw<'engine', EngineInfo>;
export type TemplateRaw = AppRaw<'template', TemplateInfo>;

/** Every event type this module knows, mapped to Suricata's object for it. */
export interface EveRawByType {
  alert: AlertRaw;
  drop: DropRaw;
  anomaly: AnomalyRaw;
  flow: FlowRaw;
  netflow: NetflowRaw;
  stats: StatsRaw;
  fileinfo: FileinfoRaw;
  packet: PacketRaw;
  metadata: MetadataRaw;
  http: HttpRaw;
  http2: Http2Raw;
  dns: DnsRaw;
  tls: TlsRaw;
  quic: QuicRaw;
  ssh: SshRaw;
  smtp: SmtpRaw;
  dhcp: DhcpRaw;
  ftp: FtpRaw;
  ftp_data: FtpDataRaw;
  smb: SmbRaw;
  nfs: NfsRaw;
  krb5: Krb5Raw;
  ike: IkeRaw;
  rdp: RdpRaw;
  sip: SipRaw;
  snmp: SnmpRaw;
  tftp: TftpRaw;
  mqtt: MqttRaw;
  rfb: RfbRaw;
  pgsql: PgsqlRaw;
  dcerpc: DcerpcRaw;
  modbus: ModbusRaw;
  dnp3: Dnp3Raw;
  bittorrent_dht: BittorrentDhtRaw;
  frame: FrameRaw;
  engine: EngineRaw;
  template: TemplateRaw;
}

/** An `event_type` this module knows. */
export type KnownEventType = keyof EveRawByType;

/**
 * A parsed event. `event_type` is the discriminant; `raw` is Suricata's object, exactly as
 * it was on the line.
 */
export interface EveRecord<T extends KnownEventType | 'unknown', R extends EveEnvelope> {
  readonly event_type: T;
  readonly raw: R;
}

/** An event whose type this module does not know: passed through whole. */
export type UnknownEveEvent = EveRecord<'unknown', EveEnvelope>;

/** Any parsed EVE event: switch on `event_type` to narrow `raw`. */
export type EveEvent =
  { [T in KnownEventType]: EveRecord<T, EveRawByType[T]> }[KnownEventType] | UnknownEveEvent;

/** The parsed event of one known type. */
export type EveEventOf<T extends KnownEventType> = EveRecord<T, EveRawByType[T]>;

export type AlertEvent = EveEventOf<'alert'>;
export type DropEvent = EveEventOf<'drop'>;
