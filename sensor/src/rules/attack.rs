//! Embedded MITRE ATT&CK Enterprise table (techniques and sub-techniques relevant to
//! Linux hosts and containers, per ATT&CK v14–v16), used to validate rule metadata.
//!
//! Sub-techniques inherit their parent's tactics, so only parents list tactics; a test
//! checks every sub-technique has its parent in the table.

/// The 14 Enterprise tactics, by short name, in kill-chain order.
pub const TACTICS: [&str; 14] = [
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];

/// A technique or sub-technique. For sub-techniques `name` is the full
/// "Parent: Sub" name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technique {
    pub id: &'static str,
    pub name: String,
    pub tactics: &'static [&'static str],
}

const RE: &[&str] = &["reconnaissance"];
const RD: &[&str] = &["resource-development"];
const IA: &[&str] = &["initial-access"];
const EX: &[&str] = &["execution"];
const PE_: &[&str] = &["persistence"];
const PRV: &[&str] = &["privilege-escalation"];
const DE: &[&str] = &["defense-evasion"];
const CA: &[&str] = &["credential-access"];
const DI: &[&str] = &["discovery"];
const LM: &[&str] = &["lateral-movement"];
const CO: &[&str] = &["collection"];
const C2: &[&str] = &["command-and-control"];
const EF: &[&str] = &["exfiltration"];
const IM: &[&str] = &["impact"];
const PERSIST_PRIV: &[&str] = &["persistence", "privilege-escalation"];
const EXEC_PERSIST_PRIV: &[&str] = &["execution", "persistence", "privilege-escalation"];
const PERSIST_PRIV_DE: &[&str] = &["persistence", "privilege-escalation", "defense-evasion"];
const PRIV_DE: &[&str] = &["privilege-escalation", "defense-evasion"];
const DE_PRIV: &[&str] = &["defense-evasion", "privilege-escalation"];
const VALID_ACCOUNTS: &[&str] = &[
    "defense-evasion",
    "persistence",
    "privilege-escalation",
    "initial-access",
];
const PERSIST_IA: &[&str] = &["persistence", "initial-access"];
const EX_LM: &[&str] = &["execution", "lateral-movement"];
const LM_IA: &[&str] = &["lateral-movement", "initial-access"];
const DE_EX: &[&str] = &["defense-evasion", "execution"];
const DE_LM: &[&str] = &["defense-evasion", "lateral-movement"];
const CA_DI: &[&str] = &["credential-access", "discovery"];
const CO_CA: &[&str] = &["collection", "credential-access"];
const CA_CO: &[&str] = &["credential-access", "collection"];
const DE_DI: &[&str] = &["defense-evasion", "discovery"];
const CA_DE_PE: &[&str] = &["credential-access", "defense-evasion", "persistence"];
const DE_PE_C2: &[&str] = &["defense-evasion", "persistence", "command-and-control"];

/// `(id, name, tactics)`; sub-technique rows have empty tactics (inherited).
const TABLE: &[(&str, &str, &[&str])] = &[
    // Reconnaissance
    ("T1595", "Active Scanning", RE),
    ("T1595.001", "Scanning IP Blocks", &[]),
    ("T1595.002", "Vulnerability Scanning", &[]),
    ("T1595.003", "Wordlist Scanning", &[]),
    ("T1592", "Gather Victim Host Information", RE),
    ("T1589", "Gather Victim Identity Information", RE),
    ("T1590", "Gather Victim Network Information", RE),
    ("T1591", "Gather Victim Org Information", RE),
    ("T1598", "Phishing for Information", RE),
    ("T1597", "Search Closed Sources", RE),
    ("T1596", "Search Open Technical Databases", RE),
    ("T1593", "Search Open Websites/Domains", RE),
    ("T1594", "Search Victim-Owned Websites", RE),
    // Resource development
    ("T1583", "Acquire Infrastructure", RD),
    ("T1583.001", "Domains", &[]),
    ("T1583.002", "DNS Server", &[]),
    ("T1583.003", "Virtual Private Server", &[]),
    ("T1583.004", "Server", &[]),
    ("T1583.005", "Botnet", &[]),
    ("T1583.006", "Web Services", &[]),
    ("T1584", "Compromise Infrastructure", RD),
    ("T1586", "Compromise Accounts", RD),
    ("T1587", "Develop Capabilities", RD),
    ("T1587.001", "Malware", &[]),
    ("T1587.002", "Code Signing Certificates", &[]),
    ("T1587.003", "Digital Certificates", &[]),
    ("T1587.004", "Exploits", &[]),
    ("T1585", "Establish Accounts", RD),
    ("T1588", "Obtain Capabilities", RD),
    ("T1588.001", "Malware", &[]),
    ("T1588.002", "Tool", &[]),
    ("T1588.003", "Code Signing Certificates", &[]),
    ("T1588.004", "Digital Certificates", &[]),
    ("T1588.005", "Exploits", &[]),
    ("T1588.006", "Vulnerabilities", &[]),
    ("T1608", "Stage Capabilities", RD),
    ("T1608.001", "Upload Malware", &[]),
    ("T1608.002", "Upload Tool", &[]),
    // Initial access
    ("T1189", "Drive-by Compromise", IA),
    ("T1190", "Exploit Public-Facing Application", IA),
    ("T1133", "External Remote Services", PERSIST_IA),
    ("T1200", "Hardware Additions", IA),
    ("T1566", "Phishing", IA),
    ("T1566.001", "Spearphishing Attachment", &[]),
    ("T1566.002", "Spearphishing Link", &[]),
    ("T1566.003", "Spearphishing via Service", &[]),
    ("T1091", "Replication Through Removable Media", LM_IA),
    ("T1195", "Supply Chain Compromise", IA),
    (
        "T1195.001",
        "Compromise Software Dependencies and Development Tools",
        &[],
    ),
    ("T1195.002", "Compromise Software Supply Chain", &[]),
    ("T1195.003", "Compromise Hardware Supply Chain", &[]),
    ("T1199", "Trusted Relationship", IA),
    ("T1078", "Valid Accounts", VALID_ACCOUNTS),
    ("T1078.001", "Default Accounts", &[]),
    ("T1078.002", "Domain Accounts", &[]),
    ("T1078.003", "Local Accounts", &[]),
    ("T1078.004", "Cloud Accounts", &[]),
    // Execution
    ("T1059", "Command and Scripting Interpreter", EX),
    ("T1059.001", "PowerShell", &[]),
    ("T1059.003", "Windows Command Shell", &[]),
    ("T1059.004", "Unix Shell", &[]),
    ("T1059.005", "Visual Basic", &[]),
    ("T1059.006", "Python", &[]),
    ("T1059.007", "JavaScript", &[]),
    ("T1059.008", "Network Device CLI", &[]),
    ("T1609", "Container Administration Command", EX),
    ("T1610", "Deploy Container", DE_EX),
    ("T1203", "Exploitation for Client Execution", EX),
    ("T1559", "Inter-Process Communication", EX),
    ("T1106", "Native API", EX),
    ("T1053", "Scheduled Task/Job", EXEC_PERSIST_PRIV),
    ("T1053.002", "At", &[]),
    ("T1053.003", "Cron", &[]),
    ("T1053.006", "Systemd Timers", &[]),
    ("T1053.007", "Container Orchestration Job", &[]),
    ("T1072", "Software Deployment Tools", EX_LM),
    ("T1569", "System Services", EX),
    ("T1569.002", "Service Execution", &[]),
    ("T1204", "User Execution", EX),
    ("T1204.001", "Malicious Link", &[]),
    ("T1204.002", "Malicious File", &[]),
    ("T1204.003", "Malicious Image", &[]),
    ("T1648", "Serverless Execution", EX),
    ("T1651", "Cloud Administration Command", EX),
    // Persistence
    ("T1098", "Account Manipulation", PERSIST_PRIV),
    ("T1098.001", "Additional Cloud Credentials", &[]),
    ("T1098.004", "SSH Authorized Keys", &[]),
    ("T1547", "Boot or Logon Autostart Execution", PERSIST_PRIV),
    ("T1547.006", "Kernel Modules and Extensions", &[]),
    ("T1547.013", "XDG Autostart Entries", &[]),
    (
        "T1037",
        "Boot or Logon Initialization Scripts",
        PERSIST_PRIV,
    ),
    ("T1037.004", "RC Scripts", &[]),
    ("T1136", "Create Account", PE_),
    ("T1136.001", "Local Account", &[]),
    ("T1136.002", "Domain Account", &[]),
    ("T1136.003", "Cloud Account", &[]),
    ("T1543", "Create or Modify System Process", PERSIST_PRIV),
    ("T1543.002", "Systemd Service", &[]),
    ("T1546", "Event Triggered Execution", PERSIST_PRIV),
    ("T1546.004", "Unix Shell Configuration Modification", &[]),
    ("T1546.005", "Trap", &[]),
    ("T1525", "Implant Internal Image", PE_),
    ("T1556", "Modify Authentication Process", CA_DE_PE),
    ("T1556.003", "Pluggable Authentication Modules", &[]),
    ("T1554", "Compromise Host Software Binary", PE_),
    ("T1574", "Hijack Execution Flow", PERSIST_PRIV_DE),
    ("T1574.006", "Dynamic Linker Hijacking", &[]),
    (
        "T1574.007",
        "Path Interception by PATH Environment Variable",
        &[],
    ),
    ("T1505", "Server Software Component", PE_),
    ("T1505.003", "Web Shell", &[]),
    ("T1205", "Traffic Signaling", DE_PE_C2),
    ("T1205.001", "Port Knocking", &[]),
    ("T1205.002", "Socket Filters", &[]),
    // Privilege escalation
    ("T1548", "Abuse Elevation Control Mechanism", PRIV_DE),
    ("T1548.001", "Setuid and Setgid", &[]),
    ("T1548.003", "Sudo and Sudo Caching", &[]),
    ("T1068", "Exploitation for Privilege Escalation", PRV),
    ("T1611", "Escape to Host", PRV),
    ("T1055", "Process Injection", DE_PRIV),
    ("T1055.008", "Ptrace System Calls", &[]),
    ("T1055.009", "Proc Memory", &[]),
    // Defense evasion
    ("T1140", "Deobfuscate/Decode Files or Information", DE),
    ("T1006", "Direct Volume Access", DE),
    ("T1480", "Execution Guardrails", DE),
    ("T1211", "Exploitation for Defense Evasion", DE),
    ("T1222", "File and Directory Permissions Modification", DE),
    (
        "T1222.002",
        "Linux and Mac File and Directory Permissions Modification",
        &[],
    ),
    ("T1564", "Hide Artifacts", DE),
    ("T1564.001", "Hidden Files and Directories", &[]),
    ("T1562", "Impair Defenses", DE),
    ("T1562.001", "Disable or Modify Tools", &[]),
    ("T1562.004", "Disable or Modify System Firewall", &[]),
    ("T1562.006", "Indicator Blocking", &[]),
    ("T1562.012", "Disable or Modify Linux Audit System", &[]),
    ("T1070", "Indicator Removal", DE),
    ("T1070.002", "Clear Linux or Mac System Logs", &[]),
    ("T1070.003", "Clear Command History", &[]),
    ("T1070.004", "File Deletion", &[]),
    ("T1070.006", "Timestomp", &[]),
    ("T1202", "Indirect Command Execution", DE),
    ("T1036", "Masquerading", DE),
    ("T1036.003", "Rename System Utilities", &[]),
    ("T1036.004", "Masquerade Task or Service", &[]),
    ("T1036.005", "Match Legitimate Name or Location", &[]),
    ("T1036.006", "Space after Filename", &[]),
    ("T1027", "Obfuscated Files or Information", DE),
    ("T1027.002", "Software Packing", &[]),
    ("T1027.004", "Compile After Delivery", &[]),
    ("T1014", "Rootkit", DE),
    ("T1620", "Reflective Code Loading", DE),
    ("T1497", "Virtualization/Sandbox Evasion", DE_DI),
    ("T1612", "Build Image on Host", DE),
    ("T1622", "Debugger Evasion", DE_DI),
    // Credential access
    ("T1557", "Adversary-in-the-Middle", CA_CO),
    ("T1110", "Brute Force", CA),
    ("T1110.001", "Password Guessing", &[]),
    ("T1110.002", "Password Cracking", &[]),
    ("T1110.003", "Password Spraying", &[]),
    ("T1110.004", "Credential Stuffing", &[]),
    ("T1555", "Credentials from Password Stores", CA),
    ("T1212", "Exploitation for Credential Access", CA),
    ("T1056", "Input Capture", CO_CA),
    ("T1056.001", "Keylogging", &[]),
    ("T1003", "OS Credential Dumping", CA),
    ("T1003.007", "Proc Filesystem", &[]),
    ("T1003.008", "/etc/passwd and /etc/shadow", &[]),
    ("T1528", "Steal Application Access Token", CA),
    ("T1539", "Steal Web Session Cookie", CA),
    ("T1552", "Unsecured Credentials", CA),
    ("T1552.001", "Credentials In Files", &[]),
    ("T1552.003", "Bash History", &[]),
    ("T1552.004", "Private Keys", &[]),
    ("T1552.005", "Cloud Instance Metadata API", &[]),
    ("T1552.007", "Container API", &[]),
    ("T1040", "Network Sniffing", CA_DI),
    ("T1606", "Forge Web Credentials", CA),
    ("T1649", "Steal or Forge Authentication Certificates", CA),
    // Discovery
    ("T1087", "Account Discovery", DI),
    ("T1087.001", "Local Account", &[]),
    ("T1087.002", "Domain Account", &[]),
    ("T1087.004", "Cloud Account", &[]),
    ("T1580", "Cloud Infrastructure Discovery", DI),
    ("T1538", "Cloud Service Dashboard", DI),
    ("T1526", "Cloud Service Discovery", DI),
    ("T1613", "Container and Resource Discovery", DI),
    ("T1083", "File and Directory Discovery", DI),
    ("T1046", "Network Service Discovery", DI),
    ("T1135", "Network Share Discovery", DI),
    ("T1201", "Password Policy Discovery", DI),
    ("T1069", "Permission Groups Discovery", DI),
    ("T1069.001", "Local Groups", &[]),
    ("T1057", "Process Discovery", DI),
    ("T1018", "Remote System Discovery", DI),
    ("T1518", "Software Discovery", DI),
    ("T1518.001", "Security Software Discovery", &[]),
    ("T1082", "System Information Discovery", DI),
    ("T1614", "System Location Discovery", DI),
    ("T1016", "System Network Configuration Discovery", DI),
    ("T1016.001", "Internet Connection Discovery", &[]),
    ("T1049", "System Network Connections Discovery", DI),
    ("T1033", "System Owner/User Discovery", DI),
    ("T1007", "System Service Discovery", DI),
    ("T1124", "System Time Discovery", DI),
    // Lateral movement
    ("T1210", "Exploitation of Remote Services", LM),
    ("T1534", "Internal Spearphishing", LM),
    ("T1570", "Lateral Tool Transfer", LM),
    ("T1563", "Remote Service Session Hijacking", LM),
    ("T1563.001", "SSH Hijacking", &[]),
    ("T1021", "Remote Services", LM),
    ("T1021.001", "Remote Desktop Protocol", &[]),
    ("T1021.004", "SSH", &[]),
    ("T1021.005", "VNC", &[]),
    ("T1550", "Use Alternate Authentication Material", DE_LM),
    ("T1550.001", "Application Access Token", &[]),
    // Collection
    ("T1560", "Archive Collected Data", CO),
    ("T1560.001", "Archive via Utility", &[]),
    ("T1123", "Audio Capture", CO),
    ("T1119", "Automated Collection", CO),
    ("T1115", "Clipboard Data", CO),
    ("T1530", "Data from Cloud Storage", CO),
    ("T1602", "Data from Configuration Repository", CO),
    ("T1213", "Data from Information Repositories", CO),
    ("T1005", "Data from Local System", CO),
    ("T1039", "Data from Network Shared Drive", CO),
    ("T1074", "Data Staged", CO),
    ("T1074.001", "Local Data Staging", &[]),
    ("T1113", "Screen Capture", CO),
    ("T1125", "Video Capture", CO),
    // Command and control
    ("T1071", "Application Layer Protocol", C2),
    ("T1071.001", "Web Protocols", &[]),
    ("T1071.002", "File Transfer Protocols", &[]),
    ("T1071.003", "Mail Protocols", &[]),
    ("T1071.004", "DNS", &[]),
    ("T1132", "Data Encoding", C2),
    ("T1132.001", "Standard Encoding", &[]),
    ("T1001", "Data Obfuscation", C2),
    ("T1568", "Dynamic Resolution", C2),
    ("T1568.002", "Domain Generation Algorithms", &[]),
    ("T1573", "Encrypted Channel", C2),
    ("T1573.001", "Symmetric Cryptography", &[]),
    ("T1573.002", "Asymmetric Cryptography", &[]),
    ("T1008", "Fallback Channels", C2),
    ("T1105", "Ingress Tool Transfer", C2),
    ("T1104", "Multi-Stage Channels", C2),
    ("T1095", "Non-Application Layer Protocol", C2),
    ("T1571", "Non-Standard Port", C2),
    ("T1572", "Protocol Tunneling", C2),
    ("T1090", "Proxy", C2),
    ("T1090.001", "Internal Proxy", &[]),
    ("T1090.002", "External Proxy", &[]),
    ("T1090.003", "Multi-hop Proxy", &[]),
    ("T1219", "Remote Access Software", C2),
    ("T1102", "Web Service", C2),
    // Exfiltration
    ("T1020", "Automated Exfiltration", EF),
    ("T1030", "Data Transfer Size Limits", EF),
    ("T1048", "Exfiltration Over Alternative Protocol", EF),
    (
        "T1048.003",
        "Exfiltration Over Unencrypted Non-C2 Protocol",
        &[],
    ),
    ("T1041", "Exfiltration Over C2 Channel", EF),
    ("T1011", "Exfiltration Over Other Network Medium", EF),
    ("T1052", "Exfiltration Over Physical Medium", EF),
    ("T1567", "Exfiltration Over Web Service", EF),
    ("T1567.002", "Exfiltration to Cloud Storage", &[]),
    ("T1029", "Scheduled Transfer", EF),
    ("T1537", "Transfer Data to Cloud Account", EF),
    // Impact
    ("T1531", "Account Access Removal", IM),
    ("T1485", "Data Destruction", IM),
    ("T1486", "Data Encrypted for Impact", IM),
    ("T1565", "Data Manipulation", IM),
    ("T1565.001", "Stored Data Manipulation", &[]),
    ("T1491", "Defacement", IM),
    ("T1491.001", "Internal Defacement", &[]),
    ("T1491.002", "External Defacement", &[]),
    ("T1561", "Disk Wipe", IM),
    ("T1561.001", "Disk Content Wipe", &[]),
    ("T1561.002", "Disk Structure Wipe", &[]),
    ("T1499", "Endpoint Denial of Service", IM),
    ("T1495", "Firmware Corruption", IM),
    ("T1490", "Inhibit System Recovery", IM),
    ("T1498", "Network Denial of Service", IM),
    ("T1496", "Resource Hijacking", IM),
    ("T1489", "Service Stop", IM),
    ("T1529", "System Shutdown/Reboot", IM),
];

fn row(id: &str) -> Option<&'static (&'static str, &'static str, &'static [&'static str])> {
    TABLE.iter().find(|(i, ..)| *i == id)
}

/// Looks up a technique or sub-technique by id (`T1059.004`).
pub fn technique(id: &str) -> Option<Technique> {
    let &(tid, name, tactics) = row(id)?;
    match id.split_once('.') {
        None => Some(Technique {
            id: tid,
            name: name.to_owned(),
            tactics,
        }),
        Some((parent, _)) => {
            let &(_, pname, ptactics) = row(parent)?;
            Some(Technique {
                id: tid,
                name: format!("{pname}: {name}"),
                tactics: ptactics,
            })
        }
    }
}

/// Every id in the table, parents before their sub-techniques.
pub fn all_ids() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(i, ..)| *i)
}
