<#
.SYNOPSIS
    Legacy alternative: restricts graph-mail-relay to the gateway mailboxes with an Application
    Access Policy.

.DESCRIPTION
    Microsoft has replaced Application Access Policies with RBAC for Applications
    (Grant-RbacMailboxAccess.ps1) and advises against new ones; use this only where the tenant
    already relies on them. Use one mechanism or the other, not both.

    A policy narrows the app's tenant-wide Mail.Read consent from Entra, so that consent must be
    in place (New-RelayAppRegistration.ps1 -Scoping ApplicationAccessPolicy).

    The policy's scope must be a security principal. Gateway mailboxes are usually shared
    mailboxes, which cannot be the scope themselves, so they go into a mail-enabled security
    group and the policy names the group.

    Propagation: Graph may take more than an hour to enforce a new or changed policy (reports
    speak of up to a day), even after Test-ApplicationAccessPolicy already shows the new result.
    Until then an out-of-scope mailbox may still be readable, or a gateway mailbox refused with
    403 "Access to OData is disabled".

    Run in a session opened with Connect-ExchangeOnline by an Exchange administrator.

.EXAMPLE
    ./New-LegacyAccessPolicy.ps1 -AppId 0f5b8c1d-... -Mailboxes fax1@contoso.example, `
        sms1@contoso.example -GroupAddress graph-mail-relay-scope@contoso.example `
        -OutOfScopeMailbox ceo@contoso.example
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [guid] $AppId,
    # The [[mailbox]] addresses of relay.toml, exactly.
    [Parameter(Mandatory)] [string[]] $Mailboxes,
    [Parameter(Mandatory)] [string] $GroupAddress,
    [string] $GroupName = 'graph-mail-relay mailbox scope',
    [string] $OutOfScopeMailbox
)
$ErrorActionPreference = 'Stop'

$group = Get-DistributionGroup -Identity $GroupAddress -ErrorAction SilentlyContinue
if (-not $group) {
    $group = New-DistributionGroup -Type Security -Name $GroupName `
        -PrimarySmtpAddress $GroupAddress -Members $Mailboxes
    # The group exists only to scope the policy; nobody should pick it in the address book.
    Set-DistributionGroup -Identity $group.Identity -HiddenFromAddressListsEnabled $true
} else {
    $members = (Get-DistributionGroupMember -Identity $group.Identity).PrimarySmtpAddress
    $Mailboxes | Where-Object { $_ -notin $members } |
        ForEach-Object { Add-DistributionGroupMember -Identity $group.Identity -Member $_ }
}

# RestrictAccess: the app may open the group's mailboxes and no others.
New-ApplicationAccessPolicy -AppId $AppId -PolicyScopeGroupId $group.PrimarySmtpAddress `
    -AccessRight RestrictAccess -Description 'graph-mail-relay: gateway mailboxes only' | Out-Null

# AccessCheckResult must be Granted for every gateway mailbox and Denied for the other one.
$checks = @($Mailboxes | ForEach-Object { @{ Mailbox = $_; Expected = 'Granted' } })
if ($OutOfScopeMailbox) { $checks += @{ Mailbox = $OutOfScopeMailbox; Expected = 'Denied' } }
foreach ($check in $checks) {
    $result = Test-ApplicationAccessPolicy -Identity $check.Mailbox -AppId $AppId
    [pscustomobject]@{
        Mailbox  = $check.Mailbox
        Result   = $result.AccessCheckResult
        Expected = $check.Expected
        Ok       = "$($result.AccessCheckResult)" -eq $check.Expected
    }
}
Write-Host 'Graph may take over an hour (sometimes a day) to enforce this; retest with the relay.'
