<#
.SYNOPSIS
    Lets graph-mail-relay read the gateway mailboxes, and only those, with RBAC for Applications.

.DESCRIPTION
    Exchange Online grants the role "Application Mail.Read" to the relay's service principal,
    limited by a management scope that matches the gateway mailboxes. This replaces the legacy
    Application Access Policy (New-LegacyAccessPolicy.ps1); use one or the other.

    The app must hold NO tenant-wide Mail.Read consent in Entra: permissions are a union, and the
    Entra grant would cover every mailbox whatever this scope says. New-RelayAppRegistration.ps1
    -Scoping Rbac leaves it out; check Enterprise applications > the app > Permissions.

    Changes reach Graph through a cache: allow 30 minutes to 2 hours before the relay sees them.
    Test-ServicePrincipalAuthorization bypasses that cache, so it can show the new state early.

    Run in a session opened with Connect-ExchangeOnline by a member of Organization Management.

.EXAMPLE
    ./Grant-RbacMailboxAccess.ps1 -AppId 0f5b8c1d-... -ServicePrincipalObjectId 5d2e... `
        -Mailboxes fax1@contoso.example, sms1@contoso.example -OutOfScopeMailbox ceo@contoso.example
#>
[CmdletBinding()]
param(
    # The app's client id, and the object id of its Enterprise application (service principal).
    [Parameter(Mandatory)] [guid] $AppId,
    [Parameter(Mandatory)] [guid] $ServicePrincipalObjectId,
    # The [[mailbox]] addresses of relay.toml, exactly.
    [Parameter(Mandatory)] [string[]] $Mailboxes,
    # Any mailbox the relay must not read; the check below expects it out of scope.
    [string] $OutOfScopeMailbox,
    [string] $ScopeName = 'graph-mail-relay gateway mailboxes',
    [string] $DisplayName = 'graph-mail-relay'
)
$ErrorActionPreference = 'Stop'

# The scope lists the mailboxes by address, so it matches relay.toml one to one. (A custom
# attribute or MemberOfGroup filter also works; MemberOfGroup counts direct members only.)
$filter = ($Mailboxes | ForEach-Object { "PrimarySmtpAddress -eq '$_'" }) -join ' -or '
if (Get-ManagementScope -Identity $ScopeName -ErrorAction SilentlyContinue) {
    Set-ManagementScope -Identity $ScopeName -RecipientRestrictionFilter $filter
} else {
    New-ManagementScope -Name $ScopeName -RecipientRestrictionFilter $filter | Out-Null
}

# Exchange's pointer to the Entra service principal.
if (-not (Get-ServicePrincipal -Identity $ServicePrincipalObjectId -ErrorAction SilentlyContinue)) {
    New-ServicePrincipal -AppId $AppId -ObjectId $ServicePrincipalObjectId `
        -DisplayName $DisplayName | Out-Null
}

# Read only: the relay does not change mail. (Write-back such as mark-as-read or move would need
# "Application Mail.ReadWrite" instead.)
$existing = Get-ManagementRoleAssignment -RoleAssignee $ServicePrincipalObjectId `
    -Role 'Application Mail.Read' -ErrorAction SilentlyContinue
if (-not $existing) {
    New-ManagementRoleAssignment -App $ServicePrincipalObjectId -Role 'Application Mail.Read' `
        -CustomResourceScope $ScopeName | Out-Null
}

# InScope must be True for every gateway mailbox and False for the out-of-scope one.
$checks = @($Mailboxes | ForEach-Object { @{ Mailbox = $_; Expected = $true } })
if ($OutOfScopeMailbox) { $checks += @{ Mailbox = $OutOfScopeMailbox; Expected = $false } }
foreach ($check in $checks) {
    $result = Test-ServicePrincipalAuthorization -Identity $ServicePrincipalObjectId `
        -Resource $check.Mailbox | Where-Object RoleName -eq 'Application Mail.Read'
    $inScope = [bool]($result | Where-Object InScope -eq $true)
    [pscustomobject]@{
        Mailbox  = $check.Mailbox
        InScope  = $inScope
        Expected = $check.Expected
        Ok       = $inScope -eq $check.Expected
    }
}
Write-Host 'Graph enforces this after its cache expires: 30 minutes to 2 hours.'
